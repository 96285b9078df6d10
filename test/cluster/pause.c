/* The pod sandbox's pause process for the one-node test cluster (no registry
 * here to pull registry.k8s.io/pause from): waits for signals, reaps
 * children, exits on SIGINT/SIGTERM. Built with gcc -static. */
#include <signal.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

static void quit(int sig) { (void)sig; _exit(0); }
static void reap(int sig) {
	(void)sig;
	while (waitpid(-1, NULL, WNOHANG) > 0) {
	}
}

int main(void) {
	signal(SIGINT, quit);
	signal(SIGTERM, quit);
	signal(SIGCHLD, reap);
	for (;;) pause();
	return 0;
}
