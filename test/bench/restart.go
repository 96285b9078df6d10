package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"sigs.k8s.io/secrets-store-csi-driver/provider/v1alpha1"
)

// poll is one rotation mount of one pod.
type poll struct {
	pod        int
	start, end time.Time
	err        error
}

// restart: pods rotate (a mount each every 2 minutes of simulated time)
// through a provider of their own that is SIGTERMed and started again
// mid-run, as a DaemonSet rollout does. Its cache starts empty, so every pod
// logs in again: what matters is how fast all are served again, that
// nothing fails once it answers, and that Vault never sees more logins at
// once than -login-concurrency.
func (b *bench) restart(ctx context.Context) error {
	if b.o.socket != "" || b.o.restartPods == 0 {
		return nil
	}
	pods := b.o.restartPods
	reqs, err := b.requests(ctx, pods, "restart", kvObjects(1))
	if err != nil {
		return err
	}
	args := append([]string{fmt.Sprintf("-cache-size=%d", 2*pods)}, b.o.providerArgs...)
	client, cmd, stopProvider, err := b.startAnother(ctx, "restart", args)
	if err != nil {
		return err
	}
	defer stopProvider()
	defer func() { _ = cmd.Process.Signal(syscall.SIGTERM) }() // the process started last
	if _, failed := mountAll(ctx, client, reqs, 32); failed > 0 {
		return fmt.Errorf("%d pods failed their first mount", failed)
	}

	interval := time.Duration(float64(2*time.Minute) / b.o.compression)
	runCtx, stop := context.WithCancel(ctx)
	var mu sync.Mutex
	var polls []poll
	var wg sync.WaitGroup
	for i, req := range reqs {
		wg.Go(func() {
			next := time.Now().Add(time.Duration(i) * interval / time.Duration(pods))
			for {
				select {
				case <-runCtx.Done():
					return
				case <-time.After(time.Until(next)):
				}
				next = next.Add(interval)
				p := poll{pod: i, start: time.Now()}
				mountCtx, cancel := context.WithTimeout(runCtx, 30*time.Second)
				_, p.err = client.Mount(mountCtx, req)
				cancel()
				p.end = time.Now()
				if runCtx.Err() != nil {
					return // the run ended under it: not a failure of the provider
				}
				mu.Lock()
				polls = append(polls, p)
				mu.Unlock()
			}
		})
	}

	time.Sleep(5 * interval) // steady rotation first
	logins := b.audit("auth/kubernetes/login")
	sigterm := time.Now()
	_ = cmd.Process.Signal(syscall.SIGTERM)
	_ = cmd.Wait()
	if cmd, err = b.launch("restart", args); err != nil {
		stop()
		wg.Wait()
		return err
	}
	err = waitVersion(ctx, client, 20*time.Second)
	ready := time.Now()
	time.Sleep(30 * time.Second)
	stop()
	wg.Wait()
	if err != nil {
		return err
	}
	return b.reportRestart(pods, polls, sigterm, ready, logins)
}

func (b *bench) reportRestart(pods int, polls []poll, sigterm, ready time.Time, logins int) error {
	servedAgain := map[int]time.Time{}
	failedDown, failedAfter, after := 0, 0, 0
	var firstErr error
	for _, p := range polls {
		switch {
		case p.start.Before(sigterm):
		case p.start.Before(ready):
			if p.err != nil {
				failedDown++
			} else if _, ok := servedAgain[p.pod]; !ok {
				servedAgain[p.pod] = p.end
			}
		default:
			after++
			if p.err != nil {
				failedAfter++
				if firstErr == nil {
					firstErr = p.err
				}
				continue
			}
			if t, ok := servedAgain[p.pod]; !ok || p.end.Before(t) {
				servedAgain[p.pod] = p.end
			}
		}
	}
	var last time.Time
	for _, t := range servedAgain {
		if t.After(last) {
			last = t
		}
	}
	scenario := fmt.Sprintf("restart: %d pods rotating, provider SIGTERMed and started again", pods)
	b.add(scenario, "down: SIGTERM to the new process answering", ready.Sub(sigterm).Round(time.Millisecond).String(), "")
	b.add(scenario, "polls failed while it was down (the driver retries them)", fmt.Sprint(failedDown), "")
	b.add(scenario, "every pod served again, after SIGTERM", fmt.Sprintf("%s (%d/%d pods)", last.Sub(sigterm).Round(time.Millisecond), len(servedAgain), pods), "≤ 30 s, all pods")
	b.add(scenario, "polls failed once it answered", fmt.Sprintf("%d of %d", failedAfter, after), "0")
	if firstErr != nil {
		fmt.Fprintf(os.Stderr, "bench: restart: first poll failed once it answered: %v\n", firstErr)
	}
	b.add(scenario, "Vault logins after the restart (audit log)", fmt.Sprint(b.audit("auth/kubernetes/login")-logins), fmt.Sprintf("≤ pods + 1%% (%d)", pods+pods/100))
	if most, err := b.r.AuditConcurrency("auth/kubernetes/login", sigterm); err == nil {
		b.add(scenario, "most logins Vault served at once (audit log)", fmt.Sprint(most), fmt.Sprintf("≤ -login-concurrency (%d)", b.loginConcurrency()))
	}
	return nil
}

// startAnother starts a provider of its own, on socket <name>.sock, with
// args, and connects to it once it answers. stop ends the process the
// returned cmd was, and the connection.
func (b *bench) startAnother(ctx context.Context, name string, args []string) (v1alpha1.CSIDriverProviderClient, *exec.Cmd, func(), error) {
	cmd, err := b.launch(name, args)
	if err != nil {
		return nil, nil, nil, err
	}
	conn, err := grpc.NewClient("unix://"+b.socket(name), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		return nil, nil, nil, err
	}
	stop := func() { conn.Close(); _ = cmd.Process.Signal(syscall.SIGTERM) }
	client := v1alpha1.NewCSIDriverProviderClient(conn)
	if err := waitVersion(ctx, client, 20*time.Second); err != nil {
		stop()
		return nil, nil, nil, err
	}
	return client, cmd, stop, nil
}

// launch starts the built provider as name, on its own socket and log.
func (b *bench) launch(name string, args []string) (*exec.Cmd, error) {
	return startProviderProcess(b.binary(), b.dir, name, b.socket(name), b.r, args, b.o.providerEnv...)
}

// binary is where buildProvider puts the provider it builds.
func (b *bench) binary() string { return filepath.Join(b.dir, "vault-csi-provider") }

func (b *bench) socket(name string) string { return filepath.Join(b.dir, name+".sock") }

// waitVersion waits for a provider to answer.
func waitVersion(ctx context.Context, client v1alpha1.CSIDriverProviderClient, within time.Duration) error {
	for deadline := time.Now().Add(within); ; time.Sleep(20 * time.Millisecond) {
		_, err := client.Version(ctx, &v1alpha1.VersionRequest{Version: "v1alpha1"})
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return err
		}
	}
}
