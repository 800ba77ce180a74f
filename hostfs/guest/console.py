"""Read what the guest said on its serial console (no I/O: text in, report out).

Lines the guest's /init and workloads print for the host (all start with
``HOSTFS-``, anywhere in a line, since kernel messages may interleave):

- ``HOSTFS-GUEST-BOOT N OF`` — boot N of OF began, the share is mounted;
- ``HOSTFS-CHECK NAME ok`` / ``HOSTFS-CHECK NAME FAIL detail``;
- ``HOSTFS-RESULT KEY VALUE`` — a value for the host to compare;
- ``HOSTFS-MEASURE NAME AMOUNT UNIT T0 T1`` — AMOUNT UNITs done between
  monotonic clock readings T0 and T1 (nanoseconds);
- ``HOSTFS-WORKLOAD-EXIT STATUS``;
- ``HOSTFS-GUEST-WAITING`` — the guest waits for the ACPI power button (libvirt tests);
- ``HOSTFS-GUEST-FAIL reason`` (setup failed) and ``HOSTFS-GUEST-END``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

MARKER = re.compile(r"HOSTFS-([A-Z-]+)(?: (.*))?$")


@dataclass(frozen=True, slots=True)
class Measure:
    name: str
    amount: float
    unit: str
    seconds: float

    @property
    def rate(self) -> float:
        return self.amount / self.seconds if self.seconds > 0 else float("inf")


@dataclass(slots=True)
class BootReport:
    number: int
    checks: dict[str, str] = field(default_factory=dict)
    results: dict[str, str] = field(default_factory=dict)
    measures: dict[str, Measure] = field(default_factory=dict)
    workload_exit: int | None = None

    @property
    def failed_checks(self) -> dict[str, str]:
        return {name: state for name, state in self.checks.items() if state != "ok"}


@dataclass(slots=True)
class GuestReport:
    boots: list[BootReport] = field(default_factory=list)
    expected_boots: int = 1
    failure: str | None = None
    ended: bool = False

    @property
    def ok(self) -> bool:
        """Every boot ran its workload to a zero exit, every check passed, clean power-off."""
        return (
            self.ended
            and self.failure is None
            and len(self.boots) == self.expected_boots
            and all(boot.workload_exit == 0 and not boot.failed_checks for boot in self.boots)
        )

    def problems(self) -> list[str]:
        """Why ``ok`` is false, one line per reason."""
        found = [f"guest setup failed: {self.failure}"] if self.failure else []
        if len(self.boots) != self.expected_boots:
            found.append(f"{len(self.boots)} of {self.expected_boots} boots reached the workload")
        for boot in self.boots:
            if boot.workload_exit != 0:
                found.append(f"boot {boot.number}: workload exit status {boot.workload_exit}")
            found += [f"boot {boot.number}: check {n}: {s}" for n, s in boot.failed_checks.items()]
        if not self.ended and self.failure is None:
            found.append("the guest never reached a clean power-off")
        return found


def parse_console(text: str) -> GuestReport:
    report = GuestReport()
    for line in text.replace("\r", "").splitlines():
        match = MARKER.search(line)
        if match is not None:
            _apply(report, match.group(1), (match.group(2) or "").split())
    return report


def parse_workload_output(text: str) -> BootReport:
    """A workload's markers when it ran outside a guest (the host-native reference)."""
    boot = BootReport(0)
    for line in text.splitlines():
        match = MARKER.search(line)
        if match is not None:
            _apply_to_boot(boot, match.group(1), (match.group(2) or "").split())
    return boot


def _apply(report: GuestReport, kind: str, words: list[str]) -> None:
    if kind == "GUEST-BOOT" and len(words) == 2:
        report.boots.append(BootReport(int(words[0])))
        report.expected_boots = int(words[1])
    elif kind == "GUEST-FAIL":
        report.failure = " ".join(words)
    elif kind == "GUEST-END":
        report.ended = True
    elif report.boots:
        _apply_to_boot(report.boots[-1], kind, words)


def _apply_to_boot(boot: BootReport, kind: str, words: list[str]) -> None:
    if kind == "CHECK" and words:
        boot.checks[words[0]] = " ".join(words[1:])
    elif kind == "RESULT" and words:
        boot.results[words[0]] = " ".join(words[1:])
    elif kind == "MEASURE" and len(words) == 5:
        name, amount, unit, start, end = words
        boot.measures[name] = Measure(name, float(amount), unit, (int(end) - int(start)) / 1e9)
    elif kind == "WORKLOAD-EXIT" and words:
        boot.workload_exit = int(words[0])
