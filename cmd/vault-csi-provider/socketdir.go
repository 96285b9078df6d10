package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
)

// socketDir hands the host directory of the provider's socket to the
// provider's user: `socket-dir DIR UID:GID`, the chart's init container,
// which runs as root with CAP_CHOWN alone, so that the provider itself runs
// as that user with no capability at all.
func socketDir(_ context.Context, args []string, _ func(string) string, _, _ io.Writer) error {
	if len(args) != 2 {
		return fmt.Errorf("socket-dir: want DIR UID:GID, got %q", args)
	}
	u, g, _ := strings.Cut(args[1], ":")
	uid, err1 := strconv.Atoi(u)
	gid, err2 := strconv.Atoi(g)
	if err1 != nil || err2 != nil {
		return fmt.Errorf("socket-dir: %q is not UID:GID, e.g. 65532:65532", args[1])
	}
	if err := os.Chown(args[0], uid, gid); err != nil {
		return fmt.Errorf("socket-dir: %w", err)
	}
	return nil
}
