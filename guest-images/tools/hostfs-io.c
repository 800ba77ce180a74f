/* hostfs-io: what busybox cannot do in the test guest, one subcommand each.
 *
 *   hostfs-io direct-hold FILE GO   open FILE with O_DIRECT, write 4 KiB through it, print
 *                                   "held", keep it open until GO exists (the host looks
 *                                   at the daemon's descriptor meanwhile), close
 *   hostfs-io mmap-write FILE TEXT  map FILE's first page MAP_SHARED, store TEXT, msync
 *   hostfs-io locks FILE            take and drop an flock(2) lock and a POSIX write lock
 *                                   (fcntl F_SETLK) on all of FILE
 *   hostfs-io wait-power-button     block until the ACPI power button (KEY_POWER on any
 *                                   /dev/input/event*) is pressed: `virsh reboot`
 *
 * Failures print "FAIL <call> <errno name>" and exit 1.  Built static by
 * hostfs/guest/tools.py (gcc -static), so the initramfs needs no libc.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/input.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#define PAGE 4096
#define MAX_INPUTS 16

static int fail(const char *call)
{
    printf("FAIL %s %s\n", call, strerrorname_np(errno));
    return 1;
}

static int direct_hold(const char *path, const char *go)
{
    void *buffer;
    if (posix_memalign(&buffer, PAGE, PAGE) != 0)
        return fail("posix_memalign");
    memset(buffer, 'D', PAGE);
    int fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_DIRECT, 0644);
    if (fd < 0)
        return fail("open");
    if (write(fd, buffer, PAGE) != PAGE)
        return fail("write");
    printf("held\n");
    fflush(stdout);
    struct stat st;
    while (stat(go, &st) != 0)
        usleep(100 * 1000);
    if (close(fd) != 0)
        return fail("close");
    return 0;
}

static int mmap_write(const char *path, const char *text)
{
    int fd = open(path, O_RDWR);
    if (fd < 0)
        return fail("open");
    char *page = mmap(NULL, PAGE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (page == MAP_FAILED)
        return fail("mmap");
    memcpy(page, text, strlen(text));
    if (msync(page, PAGE, MS_SYNC) != 0)
        return fail("msync");
    munmap(page, PAGE);
    close(fd);
    printf("mapped\n");
    return 0;
}

static int locks(const char *path)
{
    int fd = open(path, O_RDWR);
    if (fd < 0)
        return fail("open");
    if (flock(fd, LOCK_EX) != 0)
        return fail("flock LOCK_EX");
    if (flock(fd, LOCK_UN) != 0)
        return fail("flock LOCK_UN");
    struct flock lock = {.l_type = F_WRLCK, .l_whence = SEEK_SET};
    if (fcntl(fd, F_SETLK, &lock) != 0)
        return fail("fcntl F_WRLCK");
    lock.l_type = F_UNLCK;
    if (fcntl(fd, F_SETLK, &lock) != 0)
        return fail("fcntl F_UNLCK");
    close(fd);
    return 0;
}

static int wait_power_button(void)
{
    struct pollfd inputs[MAX_INPUTS];
    int count = 0;
    for (int i = 0; i < MAX_INPUTS; i++) {
        char name[32];
        snprintf(name, sizeof name, "/dev/input/event%d", i);
        int fd = open(name, O_RDONLY);
        if (fd >= 0)
            inputs[count++] = (struct pollfd){.fd = fd, .events = POLLIN};
    }
    if (count == 0)
        return fail("open /dev/input/event*");
    printf("waiting\n");
    fflush(stdout);
    for (;;) {
        if (poll(inputs, count, -1) < 0)
            return fail("poll");
        for (int i = 0; i < count; i++) {
            struct input_event event;
            if (!(inputs[i].revents & POLLIN))
                continue;
            if (read(inputs[i].fd, &event, sizeof event) != sizeof event)
                return fail("read");
            if (event.type == EV_KEY && event.code == KEY_POWER && event.value == 1) {
                printf("pressed\n");
                return 0;
            }
        }
    }
}

int main(int argc, char **argv)
{
    if (argc == 4 && strcmp(argv[1], "direct-hold") == 0)
        return direct_hold(argv[2], argv[3]);
    if (argc == 4 && strcmp(argv[1], "mmap-write") == 0)
        return mmap_write(argv[2], argv[3]);
    if (argc == 3 && strcmp(argv[1], "locks") == 0)
        return locks(argv[2]);
    if (argc == 2 && strcmp(argv[1], "wait-power-button") == 0)
        return wait_power_button();
    fprintf(stderr, "usage: hostfs-io direct-hold FILE GO | mmap-write FILE TEXT | "
                    "locks FILE | wait-power-button\n");
    return 2;
}
