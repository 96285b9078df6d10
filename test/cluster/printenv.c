/* printenv for the busybox image: Debian's busybox-static has no such
 * applet, and the secrets-store-csi-driver's own suites run
 * `kubectl exec POD -- printenv`. With names, prints their values (exit 1
 * if one is unset); without, every variable. */
#include <stdio.h>
#include <stdlib.h>

extern char **environ;

int main(int argc, char **argv) {
	int status = 0;
	if (argc == 1) {
		for (char **e = environ; *e; e++) puts(*e);
		return 0;
	}
	for (int i = 1; i < argc; i++) {
		const char *v = getenv(argv[i]);
		if (v) puts(v); else status = 1;
	}
	return status;
}
