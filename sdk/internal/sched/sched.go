// Package sched returns a host process that runs in the background
// (SCHED_IDLE) to normal priority, for a plugin whose input overflows
// while the host waits for idle CPU (Transport.boost_pid).
package sched

import (
	"errors"
	"fmt"
	"os"
	"strconv"

	"golang.org/x/sys/unix"
)

// Idle reports whether thread tid runs at SCHED_IDLE.
func Idle(tid int) (bool, error) {
	attr, err := unix.SchedGetAttr(tid, 0)
	if err != nil {
		return false, fmt.Errorf("reading the scheduling policy of thread %d: %w", tid, err)
	}
	return attr.Policy == unix.SCHED_IDLE, nil
}

// Normal sets every thread of process pid that runs at SCHED_IDLE to
// normal priority and returns how many it set. Threads started meanwhile
// take the policy of the thread that started them, so it walks the
// threads again until a pass finds none left idle (at most maxPasses).
func Normal(pid int) (int, error) {
	set := 0
	for range maxPasses {
		tasks, err := os.ReadDir("/proc/" + strconv.Itoa(pid) + "/task")
		if err != nil {
			return set, fmt.Errorf("listing the threads of process %d: %w", pid, err)
		}
		fresh := 0
		for _, t := range tasks {
			tid, err := strconv.Atoi(t.Name())
			if err != nil {
				continue
			}
			idle, err := Idle(tid)
			if errors.Is(err, unix.ESRCH) {
				continue // gone
			}
			if err != nil {
				return set, err
			}
			if !idle {
				continue
			}
			attr := unix.SchedAttr{Size: unix.SizeofSchedAttr, Policy: unix.SCHED_NORMAL}
			if err := unix.SchedSetAttr(tid, &attr, 0); err != nil && !errors.Is(err, unix.ESRCH) {
				return set, fmt.Errorf("setting thread %d of process %d to normal priority: %w", tid, pid, err)
			}
			fresh++
		}
		set += fresh
		if fresh == 0 {
			return set, nil
		}
	}
	return set, nil
}

// maxPasses bounds Normal's walks of a process busy creating threads.
const maxPasses = 8
