//go:build !unix

package platform

import "time"

// processCPUTime is not known here: the Ps stay where ServerProcs put them.
func processCPUTime() (time.Duration, bool) { return 0, false }
