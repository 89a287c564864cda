// Package terminal runs an interactive program, a shell, on a
// pseudo-terminal and types into it as a user would, for tests of modules
// that capture what is typed (bash, zsh):
//
//	cmd := exec.Command("/bin/bash", "--norc", "--noprofile", "-i")
//	cmd.Env = []string{"PS1=" + prompt, "TERM=dumb", "PATH=/usr/bin:/bin"}
//	sh := terminal.Start(t, cmd, prompt)
//	sh.Type(t, "echo hello")          // waits for the next prompt
//	pid := sh.PID()
//
// The program is killed when the test ends.
package terminal
