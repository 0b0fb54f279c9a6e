//go:build unix

package pgtest

import (
	"fmt"
	"os"
	"os/user"
	"strconv"
	"syscall"
)

// clusterUser returns the process attributes of initdb (server false) and
// postgres (server true): as us, or under root as the user nobody, to whom
// it hands dir.
func clusterUser(dir string) (func(server bool) *syscall.SysProcAttr, error) {
	var cred *syscall.Credential
	if os.Geteuid() == 0 {
		var err error
		if cred, err = nobody(); err != nil {
			return nil, err
		}
		if err := os.Chown(dir, int(cred.Uid), int(cred.Gid)); err != nil {
			return nil, fmt.Errorf("pgtest: %w", err)
		}
	}
	return func(server bool) *syscall.SysProcAttr { return procAttr(cred, server) }, nil
}

// nobody returns the credentials of the user nobody, whom the cluster
// runs as under root.
func nobody() (*syscall.Credential, error) {
	u, err := user.Lookup("nobody")
	if err != nil {
		return nil, fmt.Errorf("pgtest: running as root, and %w", err)
	}
	uid, err1 := strconv.ParseUint(u.Uid, 10, 32)
	gid, err2 := strconv.ParseUint(u.Gid, 10, 32)
	if err1 != nil || err2 != nil {
		return nil, fmt.Errorf("pgtest: user nobody has uid %q, gid %q", u.Uid, u.Gid)
	}
	return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}, nil
}

// interrupt asks postgres for a fast shutdown (SIGINT).
func interrupt(p *os.Process) { _ = syscall.Kill(p.Pid, syscall.SIGINT) }

// killGroup kills postgres and its children (its process group).
func killGroup(p *os.Process) { _ = syscall.Kill(-p.Pid, syscall.SIGKILL) }
