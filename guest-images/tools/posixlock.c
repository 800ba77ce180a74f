/* posixlock [-n] [-s|-x] FILE CMD [ARG...]: run CMD while holding a POSIX record lock
 * (fcntl(2) F_SETLKW, or F_SETLK with -n) on all of FILE; the guest's busybox and
 * util-linux have no fcntl-lock tool (flock(1) takes flock(2) locks only).
 * Exit status: CMD's; 75 when -n finds the lock held elsewhere (as flock -E 75);
 * 1 on any other failure.  Built static by hostfs/guest/tools.py. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

int main(int argc, char **argv) {
    int wait = 1, type = F_WRLCK, i = 1;
    for (; i < argc && argv[i][0] == '-'; i++) {
        if (!strcmp(argv[i], "-n")) wait = 0;
        else if (!strcmp(argv[i], "-s")) type = F_RDLCK;
        else if (!strcmp(argv[i], "-x")) type = F_WRLCK;
        else { fprintf(stderr, "posixlock: unknown option %s\n", argv[i]); return 1; }
    }
    if (argc - i < 2) { fprintf(stderr, "usage: posixlock [-n] [-s|-x] FILE CMD [ARG...]\n"); return 1; }
    int fd = open(argv[i], O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0) { perror("posixlock: open"); return 1; }
    struct flock lock = { .l_type = type, .l_whence = SEEK_SET, .l_start = 0, .l_len = 0 };
    if (fcntl(fd, wait ? F_SETLKW : F_SETLK, &lock) < 0) {
        if (!wait && (errno == EAGAIN || errno == EACCES)) return 75;
        perror("posixlock: fcntl");
        return 1;
    }
    pid_t child = fork();
    if (child < 0) { perror("posixlock: fork"); return 1; }
    if (child == 0) { execvp(argv[i + 1], argv + i + 1); perror("posixlock: exec"); _exit(127); }
    int status;
    if (waitpid(child, &status, 0) < 0) { perror("posixlock: waitpid"); return 1; }
    return WIFEXITED(status) ? WEXITSTATUS(status) : 1;
}
