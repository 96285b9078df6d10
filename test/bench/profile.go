package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"sigs.k8s.io/secrets-store-csi-driver/provider/v1alpha1"
)

// fetchProfile saves one of the provider's profiles (-profile) into the
// profile directory and prints its top entries.
func (b *bench) fetchProfile(ctx context.Context, name, query, sampleIndex string) error {
	if b.pprofAddr == "" {
		return nil
	}
	if err := os.MkdirAll(b.o.profile, 0o755); err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+b.pprofAddr+"/debug/pprof/"+query, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("profile %s: %w", name, err)
	}
	defer resp.Body.Close()
	file := filepath.Join(b.o.profile, name+".pb.gz")
	out, err := os.Create(file)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, resp.Body); err != nil {
		out.Close()
		return err
	}
	if err := out.Close(); err != nil {
		return err
	}
	top := exec.CommandContext(ctx, "go", "tool", "pprof", "-top", "-nodecount=20", "-sample_index="+sampleIndex, file)
	text, err := top.CombinedOutput()
	fmt.Fprintf(os.Stderr, "bench: profile %s (%s)\n%s", name, file, text)
	return err
}

// printMemStats prints the provider's runtime memory figures (-profile):
// what of its RSS is live heap, free heap not yet returned, and stacks.
func (b *bench) printMemStats(ctx context.Context, when string) {
	if b.pprofAddr == "" {
		return
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+b.pprofAddr+"/debug/pprof/heap?debug=1", nil)
	if err != nil {
		return
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return
	}
	defer resp.Body.Close()
	text, _ := io.ReadAll(resp.Body)
	fmt.Fprintf(os.Stderr, "bench: provider memory, %s:", when)
	for _, line := range strings.Split(string(text), "\n") {
		for _, f := range []string{"# HeapAlloc", "# HeapInuse", "# HeapIdle", "# HeapReleased", "# StackInuse", "# Sys ", "# NumGC"} {
			if strings.HasPrefix(line, f) {
				fmt.Fprintf(os.Stderr, " %s", strings.TrimPrefix(line, "# "))
			}
		}
	}
	fmt.Fprintln(os.Stderr)
}

// profileWarmMounts takes a CPU profile and an allocation profile of
// back-to-back warm mounts of req, saved as cpu-<name> and allocs-<name>.
func (b *bench) profileWarmMounts(ctx context.Context, name string, req *v1alpha1.MountRequest) error {
	if b.pprofAddr == "" {
		return nil
	}
	seconds := max(int(b.o.profileFor/time.Second), 1)
	done := make(chan error, 2)
	go func() { done <- b.fetchProfile(ctx, "cpu-"+name, fmt.Sprintf("profile?seconds=%d", seconds), "cpu") }()
	go func() {
		done <- b.fetchProfile(ctx, "allocs-"+name, fmt.Sprintf("allocs?seconds=%d", seconds), "alloc_space")
	}()
	mounts := 0
	for end := time.Now().Add(time.Duration(seconds) * time.Second); time.Now().Before(end); mounts++ {
		if _, err := b.client.Mount(ctx, req); err != nil {
			return err
		}
	}
	fmt.Fprintf(os.Stderr, "bench: profiles of %s: %d mounts in %d s (divide the profiles' totals by it for a mount's share)\n", name, mounts, seconds)
	return errors.Join(<-done, <-done)
}
