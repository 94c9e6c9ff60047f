// SPDX-License-Identifier: GPL-2.0
/*
 * vfio_fork_revoke (see ../README.md, "Tests"): map a BAR of a vfio-pci (variant) device, fork, revoke,
 * and report what the child sees. Also probes bad mmap/config inputs.
 *
 *   vfio_fork_revoke BDF BAR group|cdev fork  mem|reset|debugfs [expect-fixed|expect-legacy]
 *   vfio_fork_revoke BDF BAR group|cdev badinput
 *   vfio_fork_revoke BDF BAR group|cdev touch   (map, touch every page, report faults)
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/vfio.h>
#include <setjmp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>
#include <dirent.h>

/* Older distro headers lack the cdev uAPI (stable ABI, from linux/vfio.h). */
#ifndef VFIO_DEVICE_BIND_IOMMUFD
struct vfio_device_bind_iommufd {
	__u32 argsz;
	__u32 flags;
	__s32 iommufd;
	__u32 out_devid;
	__aligned_u64 token_uuid_ptr;
};
#define VFIO_DEVICE_BIND_IOMMUFD _IO(VFIO_TYPE, VFIO_BASE + 18)
#endif

static const char *bdf;
static int dev_fd;
static struct vfio_region_info bar, cfg;

static void die(const char *m) { perror(m); exit(2); }

static void open_group(void)
{
	char p[256], l[256];
	snprintf(p, sizeof(p), "/sys/bus/pci/devices/%s/iommu_group", bdf);
	ssize_t n = readlink(p, l, sizeof(l) - 1);
	if (n < 0) die("iommu_group");
	l[n] = 0;
	char *g = strrchr(l, '/') + 1;
	int cont = open("/dev/vfio/vfio", O_RDWR);
	if (cont < 0) die("container");
	snprintf(p, sizeof(p), "/dev/vfio/noiommu-%s", g);
	int grp = open(p, O_RDWR);
	if (grp < 0) die(p);
	if (ioctl(grp, VFIO_GROUP_SET_CONTAINER, &cont)) die("SET_CONTAINER");
	if (ioctl(cont, VFIO_SET_IOMMU, VFIO_NOIOMMU_IOMMU)) die("SET_IOMMU");
	dev_fd = ioctl(grp, VFIO_GROUP_GET_DEVICE_FD, bdf);
	if (dev_fd < 0) die("GET_DEVICE_FD");
}

static void open_cdev(void)
{
	char p[256];
	snprintf(p, sizeof(p), "/sys/bus/pci/devices/%s/vfio-dev", bdf);
	DIR *d = opendir(p);
	if (!d) die(p);
	struct dirent *e;
	char name[64] = "";
	while ((e = readdir(d)))
		if (strstr(e->d_name, "vfio"))
			snprintf(name, sizeof(name), "%.60s", e->d_name);
	closedir(d);
	snprintf(p, sizeof(p), "/dev/vfio/devices/%s", name);
	dev_fd = open(p, O_RDWR);
	if (dev_fd < 0) die(p);
	int iommufd = open("/dev/iommu", O_RDWR);
	if (iommufd < 0) die("/dev/iommu");
	struct vfio_device_bind_iommufd b = { .argsz = sizeof(b), .iommufd = iommufd };
	if (ioctl(dev_fd, VFIO_DEVICE_BIND_IOMMUFD, &b)) die("BIND_IOMMUFD");
	printf("cdev: %s bound, devid %u\n", p, b.out_devid);
}

static void region(int index, struct vfio_region_info *r)
{
	memset(r, 0, sizeof(*r));
	r->argsz = sizeof(*r);
	r->index = index;
	if (ioctl(dev_fd, VFIO_DEVICE_GET_REGION_INFO, r)) die("REGION_INFO");
}

static void set_mem(int on)
{
	uint16_t cmd;
	if (pread(dev_fd, &cmd, 2, cfg.offset + 4) != 2) die("read cmd");
	cmd = on ? (cmd | 2) : (cmd & ~2);
	if (pwrite(dev_fd, &cmd, 2, cfg.offset + 4) != 2) die("write cmd");
}

static long minflt(void)
{
	struct rusage ru;
	getrusage(RUSAGE_SELF, &ru);
	return ru.ru_minflt;
}

static sigjmp_buf jb;
static void on_bus(int s) { (void)s; siglongjmp(jb, 1); }

/* Reads every page; returns 0 ok, 1 SIGBUS. *faults gets the minflt delta. */
static int probe_read(volatile uint8_t *m, size_t len, long *faults, uint32_t *val)
{
	long f0 = minflt();
	if (sigsetjmp(jb, 1)) {
		*faults = minflt() - f0;
		return 1;
	}
	uint32_t v = 0;
	for (size_t o = 0; o < len; o += 4096)
		v ^= *(volatile uint32_t *)(m + o);
	*val = *(volatile uint32_t *)m;
	(void)v;
	*faults = minflt() - f0;
	return 0;
}

static void do_revoke(const char *how)
{
	if (!strcmp(how, "mem")) {
		set_mem(0);
	} else if (!strcmp(how, "reset")) {
		if (ioctl(dev_fd, VFIO_DEVICE_RESET)) {
			perror("VFIO_DEVICE_RESET (device has no reset method?)");
			exit(4);
		}
	} else if (!strcmp(how, "debugfs")) {
		char p[256];
		snprintf(p, sizeof(p), "/sys/kernel/debug/vfio_variant/%s/revoke", bdf);
		int fd = open(p, O_WRONLY);
		if (fd < 0 || write(fd, "1", 1) != 1) die(p);
		close(fd);
	} else {
		fprintf(stderr, "unknown revoke %s\n", how);
		exit(2);
	}
}

static int do_fork(const char *how, const char *expect)
{
	size_t len = bar.size;
	uint8_t *m = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, dev_fd, bar.offset);
	if (m == MAP_FAILED) die("mmap");
	*(volatile uint32_t *)m = 0x5a5a1234;
	/* Populate every page before fork, so the child inherits all PTEs. */
	{
		long f0; uint32_t v0;
		probe_read(m, len, &f0, &v0);
		printf("parent populated:      faults=%ld\n", f0);
	}
	uint8_t *warm = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	warm[0] = 1;
	int to_child[2], to_parent[2];
	if (pipe(to_child) || pipe(to_parent)) die("pipe");
	pid_t pid = fork();
	if (pid == 0) {
		close(to_child[1]);
		close(to_parent[0]);
		alarm(30);
		signal(SIGBUS, on_bus);
		char c;
		long f; uint32_t v; int r;
		/* Warm up: take the stack's copy-on-write faults before measuring. */
		probe_read(warm, 4096, &f, &v);
		r = probe_read(m, len, &f, &v);
		printf("child  after fork:     %s faults=%ld val=%#x\n", r ? "SIGBUS" : "ok", f, v);
		fflush(stdout);
		write(to_parent[1], "a", 1);
		read(to_child[0], &c, 1);           /* parent revoked */
		r = probe_read(m, len, &f, &v);
		printf("child  after revoke:   %s faults=%ld%s\n", r ? "SIGBUS" : "ok", f,
		       r ? "" : (f == 0 ? " (KEPT ACCESS: stale PTEs)" : " (refaulted)"));
		int kept = !r && f == 0;
		fflush(stdout);
		write(to_parent[1], "b", 1);
		read(to_child[0], &c, 1);           /* parent re-enabled */
		r = probe_read(m, len, &f, &v);
		printf("child  after re-enable: %s faults=%ld val=%#x\n", r ? "SIGBUS" : "ok", f, v);
		fflush(stdout);
		_exit(kept ? 10 : 0);
	}
	char c;
	read(to_parent[0], &c, 1);
	do_revoke(how);
	printf("parent revoked via %s\n", how);
	fflush(stdout);
	write(to_child[1], "x", 1);
	if (read(to_parent[0], &c, 1) != 1) fprintf(stderr, "child died after revoke\n");
	if (!strcmp(how, "mem"))
		set_mem(1);
	write(to_child[1], "y", 1);
	int st;
	waitpid(pid, &st, 0);
	int kept = WIFEXITED(st) && WEXITSTATUS(st) == 10;
	printf("result: child %s access after revoke\n", kept ? "KEPT" : "lost");
	if (expect && !strcmp(expect, "expect-fixed"))
		return kept ? 1 : 0;
	if (expect && !strcmp(expect, "expect-legacy"))
		return kept ? 0 : 1;
	return 0;
}

static void try_map(const char *what, size_t len, off_t off, int flags)
{
	void *m = mmap(NULL, len, PROT_READ | PROT_WRITE, flags, dev_fd, off);
	if (m == MAP_FAILED)
		printf("%-28s errno %d (%s)\n", what, errno, strerror(errno));
	else {
		printf("%-28s ok\n", what);
		munmap(m, len);
	}
}

static int do_badinput(void)
{
	struct vfio_region_info rom;
	region(VFIO_PCI_ROM_REGION_INDEX, &rom);
	try_map("MAP_PRIVATE", 4096, bar.offset, MAP_PRIVATE);
	try_map("beyond BAR (size+4K)", bar.size + 4096, bar.offset, MAP_SHARED);
	try_map("offset past end", 4096, bar.offset + bar.size, MAP_SHARED);
	try_map("unaligned offset", 4096, bar.offset + 100, MAP_SHARED);
	try_map("config region", 4096, cfg.offset, MAP_SHARED);
	try_map("ROM region", 4096, rom.offset, MAP_SHARED);
	try_map("region index 20", 4096, (off_t)20 << 40, MAP_SHARED);
	try_map("BAR ok", bar.size, bar.offset, MAP_SHARED);
	/* Config writes to read-only fields: vendor/device ID, class. */
	uint16_t id0, id1, w = 0xbeef;
	pread(dev_fd, &id0, 2, cfg.offset + 0);
	ssize_t r = pwrite(dev_fd, &w, 2, cfg.offset + 0);
	pread(dev_fd, &id1, 2, cfg.offset + 0);
	printf("%-28s ret %zd errno %d vendor %#x -> %#x\n", "config write vendor ID", r,
	       r < 0 ? errno : 0, id0, id1);
	uint32_t cls0, cls1, cw = 0x12345678;
	pread(dev_fd, &cls0, 4, cfg.offset + 8);
	r = pwrite(dev_fd, &cw, 4, cfg.offset + 8);
	pread(dev_fd, &cls1, 4, cfg.offset + 8);
	printf("%-28s ret %zd errno %d class %#x -> %#x\n", "config write class/rev", r,
	       r < 0 ? errno : 0, cls0, cls1);
	r = pwrite(dev_fd, &w, 2, cfg.offset + 4096);
	printf("%-28s ret %zd errno %d\n", "config write past 4K", r, r < 0 ? errno : 0);
	return 0;
}

static int do_touch(void)
{
	size_t len = bar.size;
	uint8_t *m = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, dev_fd, bar.offset);
	if (m == MAP_FAILED) die("mmap");
	long f; uint32_t v;
	int r = probe_read(m, len, &f, &v);
	printf("touch %zu KiB: %s faults=%ld\n", len / 1024, r ? "SIGBUS" : "ok", f);
	r = probe_read(m, len, &f, &v);
	printf("touch again: %s faults=%ld\n", r ? "SIGBUS" : "ok", f);
	/* PMD-aligned mapping: reserve 2 * size, map at the aligned address. */
	if (len >= (2u << 20)) {
		uint8_t *res = mmap(NULL, len + (2u << 20), PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		uintptr_t a = ((uintptr_t)res + (2u << 20) - 1) & ~(uintptr_t)((2u << 20) - 1);
		uint8_t *h = mmap((void *)a, len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_FIXED, dev_fd, bar.offset);
		if (h == MAP_FAILED) die("mmap aligned");
		r = probe_read(h, len, &f, &v);
		printf("touch aligned %zu KiB at %p: %s faults=%ld\n", len / 1024, h, r ? "SIGBUS" : "ok", f);
	}
	return 0;
}

int main(int argc, char **argv)
{
	if (argc < 5) {
		fprintf(stderr, "usage: %s BDF BAR group|cdev fork|badinput|touch [...]\n", argv[0]);
		return 2;
	}
	setvbuf(stdout, NULL, _IOLBF, 0);
	alarm(120);
	bdf = argv[1];
	if (!strcmp(argv[3], "cdev"))
		open_cdev();
	else
		open_group();
	region(atoi(argv[2]), &bar);
	region(VFIO_PCI_CONFIG_REGION_INDEX, &cfg);
	printf("BAR%s: size %llu offset %#llx flags %#x\n", argv[2], (unsigned long long)bar.size,
	       (unsigned long long)bar.offset, bar.flags);
	set_mem(1);
	if (!strcmp(argv[4], "fork"))
		return do_fork(argc > 5 ? argv[5] : "mem", argc > 6 ? argv[6] : NULL);
	if (!strcmp(argv[4], "badinput"))
		return do_badinput();
	if (!strcmp(argv[4], "touch"))
		return do_touch();
	return 2;
}
