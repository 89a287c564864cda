package sched_test

import (
	"os/exec"
	"runtime"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/ecaphost/ecaphost/sdk/harness"
	"github.com/ecaphost/ecaphost/sdk/internal/sched"
)

// TestNormal: a process started in the background (SCHED_IDLE) is
// returned to normal priority, once; one at normal priority is left alone.
func TestNormal(t *testing.T) {
	harness.RequirePrivileges(t)
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	idle := unix.SchedAttr{Size: unix.SizeofSchedAttr, Policy: unix.SCHED_IDLE}
	if err := unix.SchedSetAttr(0, &idle, 0); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("sleep", "10")
	err := cmd.Start()
	// Back to normal before anything else runs on this thread.
	if rerr := unix.SchedSetAttr(0, &unix.SchedAttr{Size: unix.SizeofSchedAttr, Policy: unix.SCHED_NORMAL}, 0); rerr != nil {
		t.Fatal(rerr)
	}
	if err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	pid := cmd.Process.Pid
	if bg, err := sched.Idle(pid); err != nil || !bg {
		t.Fatalf("Idle(child) = %v, %v: the child did not inherit SCHED_IDLE, the test proves nothing", bg, err)
	}
	if n, err := sched.Normal(pid); n != 1 || err != nil {
		t.Errorf("Normal(child in the background) = %d, %v; want 1 thread set", n, err)
	}
	if bg, err := sched.Idle(pid); err != nil || bg {
		t.Errorf("after Normal: Idle = %v, %v; want normal priority", bg, err)
	}
	if n, err := sched.Normal(pid); n != 0 || err != nil {
		t.Errorf("Normal(child at normal priority) = %d, %v; want 0 threads set", n, err)
	}
	if _, err := sched.Normal(1 << 30); err == nil {
		t.Error("Normal of a process that does not exist succeeded")
	}
}
