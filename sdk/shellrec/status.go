package shellrec

import "strconv"

// statusStrings holds the decimal form of exit statuses 0-255.
var statusStrings = func() (s [256]string) {
	for i := range s {
		s[i] = strconv.Itoa(i)
	}
	return s
}()

// statusString returns st in decimal for an event field, without
// allocating for the usual exit statuses 0-255. Safe for concurrent use.
func statusString(st int32) string {
	if st >= 0 && int(st) < len(statusStrings) {
		return statusStrings[st]
	}
	return strconv.Itoa(int(st))
}
