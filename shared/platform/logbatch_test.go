package platform_test

import (
	"strings"
	"testing"
	"time"

	"github.com/atrium-suite/atrium/shared/config"
	"github.com/atrium-suite/atrium/shared/platform"
	"github.com/atrium-suite/atrium/shared/testutil"
)

func TestServerLoggerBatches(t *testing.T) {
	var out testutil.LockedBuffer
	log, flush := platform.NewServerLogger(config.Shared{LogLevel: "info"}, &out)

	log.Info("request", "n", 1)
	log.With("product", "connect").Info("request", "n", 2)
	if got := out.String(); got != "" {
		t.Fatalf("info lines were written at once: %q", got)
	}
	// They come out on their own shortly.
	for deadline := time.Now().Add(5 * time.Second); !strings.Contains(out.String(), "n=2"); {
		if time.Now().After(deadline) {
			t.Fatalf("info lines not written after the batch delay: %q", out.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
	if !strings.Contains(out.String(), "product=connect") {
		t.Errorf("With lost its attributes: %q", out.String())
	}

	// A warning is written at once, after what came before it.
	log.Info("before")
	log.Warn("trouble")
	got := out.String()
	if !strings.Contains(got, "msg=before") || !strings.Contains(got, "msg=trouble") || strings.Index(got, "msg=before") > strings.Index(got, "msg=trouble") {
		t.Errorf("a warning did not flush in order: %q", got)
	}

	// flush writes the rest (the process is ending).
	log.Info("last")
	flush()
	if !strings.Contains(out.String(), "msg=last") {
		t.Errorf("flush did not write the last line: %q", out.String())
	}
}

// TestBatchWriterClose: Close writes what has gathered, and a write after
// it is passed on at once (a job's last output, after its log is closed).
func TestBatchWriterClose(t *testing.T) {
	var out testutil.LockedBuffer
	bw := platform.NewBatchWriter(&out)
	bw.Write([]byte("one\n"))
	if out.String() != "" {
		t.Fatalf("written before a flush: %q", out.String())
	}
	bw.Close()
	if out.String() != "one\n" {
		t.Fatalf("after Close: %q", out.String())
	}
	bw.Write([]byte("two\n"))
	if out.String() != "one\ntwo\n" {
		t.Fatalf("a write after Close was held: %q", out.String())
	}
}
