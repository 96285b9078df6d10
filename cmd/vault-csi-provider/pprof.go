//go:build pprof

package main

import (
	"net/http"
	_ "net/http/pprof" // the profiles, on the address below only
	"os"
)

// Built with -tags pprof (the benchmark's -profile does), the provider
// serves Go's profiles on VCP_PPROF_ADDR. Release builds do not have this
// file: no profile endpoint can be turned on in production by mistake.
func init() {
	if addr := os.Getenv("VCP_PPROF_ADDR"); addr != "" {
		go func() { _ = http.ListenAndServe(addr, nil) }() //nolint:gosec // a debugging build, on an address the operator chose
	}
}
