"""SQLite through two hostfs daemons on one directory keeps its database whole.

Two writers, each through its own ``hostfs mount`` of the share (as two VMs
with a hostfs each), insert rows in rollback-journal mode; SQLite's locking
(F_SETLK on its lock bytes, fcntl(2)) is what serialises them, so it has to
reach the host (``--locks host``).  ``--cache never``: the two mounts' page
caches are not coherent with each other, and a shared database needs every
read to reach the file.  With ``--locks local`` both writers get the write
lock at once (tests/mount/test_host_locks.py shows why); README "Locks" has
what that did to the database here (scripts/sqlite-two-daemons).
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys

from tests.mount.test_host_locks import two_mounts

ROWS = 150
"""Rows per writer, each its own transaction: enough lock hand-overs to interleave."""

WRITER = """
import sqlite3, sys
path, writer, rows = sys.argv[1], sys.argv[2], int(sys.argv[3])
db = sqlite3.connect(path, timeout=120, isolation_level=None)
db.execute("PRAGMA journal_mode=DELETE")
for n in range(rows):
    db.execute("BEGIN IMMEDIATE")
    (count,) = db.execute("SELECT count(*) FROM t").fetchone()
    db.execute("INSERT INTO t (writer, n, seen) VALUES (?, ?, ?)", (writer, n, count))
    db.execute("COMMIT")
db.close()
"""


def run_writers(paths: list[str], rows: int = ROWS) -> list[subprocess.CompletedProcess[str]]:
    """One writer process per path, at once; their exit statuses and stderr."""
    writers = [
        subprocess.Popen(
            [sys.executable, "-c", WRITER, path, str(index), str(rows)],
            stderr=subprocess.PIPE,
            text=True,
        )
        for index, path in enumerate(paths)
    ]
    results = []
    for writer in writers:
        _, stderr = writer.communicate(timeout=600)
        results.append(subprocess.CompletedProcess(writer.args, writer.returncode, "", stderr))
    return results


def test_two_writers_through_two_daemons_keep_the_database_consistent(tmp_path):
    with two_mounts(tmp_path, "--cache", "never") as (share, a, b):
        database = os.path.join(share, "shared.db")
        with sqlite3.connect(database) as db:
            db.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, writer INT, n INT, seen INT)")
        db.close()
        results = run_writers(
            [os.path.join(a.path, "shared.db"), os.path.join(b.path, "shared.db")]
        )
    assert [(r.returncode, r.stderr) for r in results] == [(0, ""), (0, "")]
    db = sqlite3.connect(database)
    try:
        assert db.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        assert db.execute("SELECT count(*) FROM t").fetchone() == (2 * ROWS,)
        # Each transaction saw every row committed before it: none was lost or overwritten.
        seen = [row[0] for row in db.execute("SELECT seen FROM t ORDER BY id")]
        assert seen == list(range(2 * ROWS))
        writers = db.execute("SELECT writer, count(*) FROM t GROUP BY writer").fetchall()
        assert writers == [(0, ROWS), (1, ROWS)]
    finally:
        db.close()
