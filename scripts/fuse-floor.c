/*
 * The floor under every FUSE server on this machine, for scripts/bench-local.
 *
 * A libfuse low-level daemon that keeps a directory tree in memory and does
 * nothing else: no host file system, no Python.  A metadata rate measured
 * through it is what the kernel's FUSE round trips alone allow, so a target
 * above this column cannot be reached by any FUSE server on the same machine.
 * It makes hostfs's protocol choices, so it asks the kernel for the same
 * requests: entries and attributes valid for 1 s (--cache auto), READDIRPLUS
 * with READDIRPLUS_AUTO (libfuse's default once a readdirplus op exists).
 *
 * Build: cc -O2 -o fuse-floor fuse-floor.c $(pkg-config --cflags --libs fuse3)
 * Run:   fuse-floor -f -s -o default_permissions,allow_other MOUNTPOINT
 */
#define FUSE_USE_VERSION 34

#include <errno.h>
#include <fuse_lowlevel.h>
#include <limits.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define MAX_NODES (1u << 20)
#define SLOTS (MAX_NODES * 2u) /* open addressing, at most half full */
#define EMPTY 0u
#define GONE UINT32_MAX
#define TIMEOUT 1.0

struct node {
	fuse_ino_t parent;
	mode_t mode;
	uid_t uid;
	gid_t gid;
	int used;
	char name[NAME_MAX + 1];
};

static struct node nodes[MAX_NODES];
static uint32_t slots[SLOTS]; /* (parent, name) -> node index */
static uint32_t next_node = FUSE_ROOT_ID + 1;

static uint32_t hash(fuse_ino_t parent, const char *name)
{
	uint32_t h = 2166136261u ^ (uint32_t)parent;
	for (; *name; name++)
		h = (h ^ (unsigned char)*name) * 16777619u;
	return h % SLOTS;
}

/* The slot holding (parent, name), or the first free one on its probe path. */
static uint32_t *find(fuse_ino_t parent, const char *name, int for_insert)
{
	uint32_t *free_slot = NULL;
	for (uint32_t i = hash(parent, name);; i = (i + 1) % SLOTS) {
		uint32_t *slot = &slots[i];
		if (*slot == EMPTY)
			return for_insert && free_slot ? free_slot : slot;
		if (*slot == GONE) {
			if (!free_slot)
				free_slot = slot;
			continue;
		}
		struct node *n = &nodes[*slot];
		if (n->parent == parent && strcmp(n->name, name) == 0)
			return slot;
	}
}

static void attributes(fuse_ino_t ino, struct stat *st)
{
	memset(st, 0, sizeof(*st));
	st->st_ino = ino;
	st->st_mode = nodes[ino].mode;
	st->st_nlink = S_ISDIR(st->st_mode) ? 2 : 1;
	st->st_uid = nodes[ino].uid;
	st->st_gid = nodes[ino].gid;
}

static void fill_entry(struct fuse_entry_param *entry, fuse_ino_t ino)
{
	memset(entry, 0, sizeof(*entry));
	entry->ino = ino;
	entry->attr_timeout = TIMEOUT;
	entry->entry_timeout = TIMEOUT;
	attributes(ino, &entry->attr);
}

static void reply_entry(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct fuse_entry_param entry;
	fill_entry(&entry, ino);
	if (fi)
		fuse_reply_create(req, &entry, fi);
	else
		fuse_reply_entry(req, &entry);
}

static void add(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode,
		struct fuse_file_info *fi)
{
	uint32_t *slot = find(parent, name, 1);
	if (*slot != EMPTY && *slot != GONE) {
		fuse_reply_err(req, EEXIST);
		return;
	}
	if (next_node >= MAX_NODES || strlen(name) > NAME_MAX) {
		fuse_reply_err(req, ENOSPC);
		return;
	}
	const struct fuse_ctx *caller = fuse_req_ctx(req);
	struct node *n = &nodes[next_node];
	n->parent = parent;
	n->mode = mode;
	n->uid = caller->uid;
	n->gid = caller->gid;
	n->used = 1;
	strcpy(n->name, name);
	*slot = next_node++;
	reply_entry(req, *slot, fi);
}

static void floor_lookup(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	uint32_t *slot = find(parent, name, 0);
	if (*slot == EMPTY)
		fuse_reply_err(req, ENOENT);
	else
		reply_entry(req, *slot, NULL);
}

static void floor_getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct stat st;
	attributes(ino, &st);
	fuse_reply_attr(req, &st, TIMEOUT);
}

static void floor_create(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode,
			 struct fuse_file_info *fi)
{
	fi->fh = 0;
	add(req, parent, name, S_IFREG | (mode & 07777), fi);
}

static void floor_mkdir(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode)
{
	add(req, parent, name, S_IFDIR | (mode & 07777), NULL);
}

static void remove_name(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	uint32_t *slot = find(parent, name, 0);
	if (*slot == EMPTY) {
		fuse_reply_err(req, ENOENT);
		return;
	}
	nodes[*slot].used = 0;
	*slot = GONE;
	fuse_reply_err(req, 0);
}

static void floor_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	fuse_reply_open(req, fi);
}

static void floor_done(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	fuse_reply_err(req, 0);
}

static void floor_forget(fuse_req_t req, fuse_ino_t ino, uint64_t nlookup)
{
	fuse_reply_none(req);
}

static void floor_forget_multi(fuse_req_t req, size_t count, struct fuse_forget_data *forgets)
{
	fuse_reply_none(req);
}

/* Offsets are node indexes + 1; "." and ".." are left out (ls does not need them).
 * Nodes are never freed, so the lookups READDIRPLUS counts need no bookkeeping. */
static void list(fuse_req_t req, fuse_ino_t ino, size_t size, off_t offset, int plus)
{
	char *buffer = malloc(size);
	size_t used = 0;
	if (!buffer) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	for (uint32_t i = offset > 0 ? (uint32_t)offset : FUSE_ROOT_ID + 1; i < next_node; i++) {
		if (!nodes[i].used || nodes[i].parent != ino)
			continue;
		struct fuse_entry_param entry;
		size_t length;
		fill_entry(&entry, i);
		if (plus)
			length = fuse_add_direntry_plus(req, buffer + used, size - used,
							nodes[i].name, &entry, i + 1);
		else
			length = fuse_add_direntry(req, buffer + used, size - used,
						   nodes[i].name, &entry.attr, i + 1);
		if (length > size - used)
			break;
		used += length;
	}
	fuse_reply_buf(req, buffer, used);
	free(buffer);
}

static void floor_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t offset,
			  struct fuse_file_info *fi)
{
	list(req, ino, size, offset, 0);
}

static void floor_readdirplus(fuse_req_t req, fuse_ino_t ino, size_t size, off_t offset,
			      struct fuse_file_info *fi)
{
	list(req, ino, size, offset, 1);
}

static const struct fuse_lowlevel_ops operations = {
	.lookup = floor_lookup,
	.forget = floor_forget,
	.forget_multi = floor_forget_multi,
	.getattr = floor_getattr,
	.mkdir = floor_mkdir,
	.unlink = remove_name,
	.rmdir = remove_name,
	.create = floor_create,
	.open = floor_open,
	.flush = floor_done,
	.release = floor_done,
	.opendir = floor_open,
	.readdir = floor_readdir,
	.readdirplus = floor_readdirplus,
	.releasedir = floor_done,
};

int main(int argc, char *argv[])
{
	struct fuse_args args = FUSE_ARGS_INIT(argc, argv);
	struct fuse_cmdline_opts options;
	struct fuse_session *session;
	int status = 1;

	if (fuse_parse_cmdline(&args, &options) != 0 || !options.mountpoint)
		return 2;
	nodes[FUSE_ROOT_ID] = (struct node){.mode = S_IFDIR | 0755, .used = 1};
	session = fuse_session_new(&args, &operations, sizeof(operations), NULL);
	if (session && fuse_set_signal_handlers(session) == 0 &&
	    fuse_session_mount(session, options.mountpoint) == 0) {
		status = fuse_session_loop(session) ? 1 : 0;
		fuse_session_unmount(session);
		fuse_remove_signal_handlers(session);
	}
	if (session)
		fuse_session_destroy(session);
	free(options.mountpoint);
	fuse_opt_free_args(&args);
	return status;
}
