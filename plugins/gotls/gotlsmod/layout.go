package gotlsmod

import (
	"fmt"
	"strings"
)

// layout holds the offsets the probes follow from a *tls.Conn to its
// socket's descriptor (kern/gotls_kern.c, constants gotls_*), for amd64.
type layout struct {
	ConnData  uint32 // tls.Conn: the data word of the net.Conn interface field conn
	TCPConnFD uint32 // net.TCPConn: conn.fd, the *netFD
	Sysfd     uint32 // netFD: pfd.Sysfd (internal/poll.FD after its fdMutex)
	Family    uint32 // netFD: family, sotype 8 bytes after it
}

// layoutRow is a range of Go releases sharing one layout.
type layoutRow struct {
	from, to release
	layout   layout
}

// layouts is the table of layouts per Go release. Every release from 1.17
// to 1.27 has the same: tls.Conn starts with conn net.Conn (type word,
// data word); net.TCPConn embeds conn{fd *netFD}; netFD starts with
// pfd poll.FD, whose fdMutex (uint64, uint32, uint32) is followed by
// Sysfd int; poll.FD is 56 bytes (Sysfd, then pollDesc and the iovecs
// pointer, moved into SysFile in 1.21, csema, isBlocking and three bools),
// then family and sotype. Read from the sources of 1.19, 1.26 and 1.27 and
// checked by TestLayoutMatchesDWARF against the DWARF of binaries built by
// each toolchain the tests use. A release that changes one of these adds
// a row.
var layouts = []layoutRow{
	{from: release{1, 17}, to: release{1, 27}, layout: layout{ConnData: 8, TCPConnFD: 0, Sysfd: 16, Family: 56}},
}

// knownReleases describes the table's range for messages: "go1.17 to go1.27".
func knownReleases() string {
	return fmt.Sprintf("%s to %s", layouts[0].from, layouts[len(layouts)-1].to)
}

// sharedLayout returns the layout of every release the table knows, if
// they all have one: on a node where no Go program runs yet, the probes
// are loaded with it and need no choice.
func sharedLayout() (layout, bool) {
	for _, row := range layouts[1:] {
		if row.layout != layouts[0].layout {
			return layout{}, false
		}
	}
	return layouts[0].layout, true
}

// layoutFor returns the layout of release r.
func layoutFor(r release) (layout, bool) {
	for _, row := range layouts {
		if !r.less(row.from) && !row.to.less(r) {
			return row.layout, true
		}
	}
	return layout{}, false
}

// parseOverride parses the go_version attribute: "1.27", "go1.27" or a
// full version ("go1.27.3"); only the release counts.
func parseOverride(s string) (release, bool) {
	if !strings.HasPrefix(s, "go") {
		s = "go" + s
	}
	return parseRelease(s)
}
