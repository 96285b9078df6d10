// Command livenessprobe serves /healthz for a CSI driver, as
// kubernetes-csi/livenessprobe does (which the Go module proxy refuses): each
// request calls the driver's Identity Probe over its socket and answers 200
// when the driver says it is ready, 500 otherwise. It takes that tool's flags
// as the driver's chart passes them:
//
//	livenessprobe --csi-address=/csi/csi.sock --probe-timeout=3s --http-endpoint=0.0.0.0:9808
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"net/http"
	"time"

	csi "github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
)

func main() {
	address := flag.String("csi-address", "/run/csi/socket", "path of the driver's CSI socket")
	timeout := flag.Duration("probe-timeout", time.Second, "how long one Probe call may take")
	endpoint := flag.String("http-endpoint", "", "address to serve /healthz on, e.g. 0.0.0.0:9808")
	port := flag.Int("health-port", 9808, "port to serve /healthz on when -http-endpoint is empty")
	flag.Int("v", 0, "accepted for livenessprobe's flags; ignored")
	flag.Parse()
	if *endpoint == "" {
		*endpoint = fmt.Sprintf("0.0.0.0:%d", *port)
	}
	conn, err := grpc.NewClient("unix://"+*address, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		log.Fatal(err)
	}
	identity := csi.NewIdentityClient(conn)
	http.HandleFunc("/healthz", func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), *timeout)
		defer cancel()
		resp, err := identity.Probe(ctx, &csi.ProbeRequest{})
		switch {
		case err != nil:
			http.Error(w, "probe: "+err.Error(), http.StatusInternalServerError)
		case resp.GetReady() != nil && !resp.GetReady().GetValue():
			http.Error(w, "driver not ready", http.StatusInternalServerError)
		default:
			fmt.Fprintln(w, "ok")
		}
	})
	srv := &http.Server{Addr: *endpoint, ReadHeaderTimeout: 5 * time.Second}
	log.Fatal(srv.ListenAndServe())
}
