package terminal

import (
	"bytes"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/creack/pty"

	"github.com/ecaphost/ecaphost/sdk/harness"
)

// Wait bounds how long Start and Type wait for a prompt.
const Wait = 10 * time.Second

// Terminal is a program running on a pseudo-terminal. Its methods may be
// called while the program writes.
type Terminal struct {
	cmd    *exec.Cmd
	tty    *os.File
	prompt string
	kill   sync.Once

	mu      sync.Mutex
	out     bytes.Buffer
	prompts int
}

// Start runs cmd on a new pseudo-terminal and waits for its first prompt
// (the text prompt, which the program must print before each line it
// reads), failing the test when it does not come.
func Start(t testing.TB, cmd *exec.Cmd, prompt string) *Terminal {
	t.Helper()
	tty, err := pty.Start(cmd)
	if err != nil {
		t.Fatalf("starting %s on a pty: %v", cmd.Path, err)
	}
	term := &Terminal{cmd: cmd, tty: tty, prompt: prompt}
	go term.read()
	t.Cleanup(term.Kill)
	if !term.WaitPrompts(1) {
		t.Fatalf("no prompt from %s; output %q", cmd.Path, term.Output())
	}
	return term
}

// read keeps what the program writes, counting its prompts.
func (term *Terminal) read() {
	buf := make([]byte, 4096)
	for {
		n, err := term.tty.Read(buf)
		term.mu.Lock()
		term.out.Write(buf[:n])
		term.prompts = strings.Count(term.out.String(), term.prompt)
		term.mu.Unlock()
		if err != nil {
			return
		}
	}
}

// Kill kills the program, waits for it to exit and closes the terminal;
// the test's end does it too. Later calls do nothing.
func (term *Terminal) Kill() {
	term.kill.Do(func() {
		_ = term.cmd.Process.Kill()
		_ = term.cmd.Wait()
		_ = term.tty.Close()
	})
}

// PID is the program's process id.
func (term *Terminal) PID() int { return term.cmd.Process.Pid }

// Output is everything the program wrote so far.
func (term *Terminal) Output() string {
	term.mu.Lock()
	defer term.mu.Unlock()
	return term.out.String()
}

// WaitPrompts waits (at most Wait) until the program has printed n
// prompts, and reports whether it did.
func (term *Terminal) WaitPrompts(n int) bool {
	return harness.Poll(Wait, func() bool {
		term.mu.Lock()
		defer term.mu.Unlock()
		return term.prompts >= n
	})
}

// Type types each line followed by Enter (the lines of one multi-line
// command, say) and waits for the next prompt, failing the test when it
// does not come.
func (term *Terminal) Type(t testing.TB, lines ...string) {
	t.Helper()
	term.mu.Lock()
	before := term.prompts
	term.mu.Unlock()
	for _, l := range lines {
		if _, err := term.tty.WriteString(l + "\n"); err != nil {
			t.Fatal(err)
		}
	}
	if !term.WaitPrompts(before + 1) {
		t.Fatalf("no prompt after %q; output %q", lines, term.Output())
	}
}
