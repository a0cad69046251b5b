package launcher

import (
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// TestPacedReader: once pacing is on, a read after a small one waits out
// outputPace; after a read that filled half the buffer (a flood) or
// before pacing is on, it does not wait.
func TestPacedReader(t *testing.T) {
	for _, tc := range []struct {
		name  string
		on    bool
		first int // bytes the first read asks for (the buffer is 128)
		wait  bool
	}{
		{"trickle, paced", true, 1, true},
		{"trickle, while starting", false, 1, false},
		{"flood", true, 128, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var on atomic.Bool
			on.Store(tc.on)
			var waited []time.Duration
			p := &pacedReader{r: strings.NewReader(strings.Repeat("x", 1024)), on: &on,
				sleep: func(d time.Duration) { waited = append(waited, d) }}
			buf := make([]byte, 128)
			for _, n := range []int{tc.first, 128} {
				if _, err := p.Read(buf[:n]); err != nil {
					t.Fatal(err)
				}
			}
			if got := len(waited) > 0; got != tc.wait {
				t.Fatalf("waited %v, want a wait: %v", waited, tc.wait)
			}
			if tc.wait && (waited[0] <= 0 || waited[0] > outputPace) {
				t.Errorf("waited %v, want up to %v", waited[0], outputPace)
			}
		})
	}
}
