package secrets_test

import (
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/atrium-suite/atrium/shared/secrets"
)

func TestLoadOrCreateAgreesAcrossConcurrentStarts(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sub", "secret.key")
	keys := make([]string, 8)
	var wg sync.WaitGroup
	for i := range keys {
		wg.Go(func() {
			k, err := secrets.LoadOrCreate(path)
			if err != nil {
				t.Error(err)
			}
			keys[i] = string(k)
		})
	}
	wg.Wait()
	for _, k := range keys[1:] {
		if k != keys[0] || len(k) != secrets.KeySize {
			t.Fatal("servers starting together got different keys")
		}
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("key file mode %v, want 0600", fi.Mode().Perm())
	}
	again, _ := secrets.LoadOrCreate(path)
	if string(again) != keys[0] {
		t.Error("key changed on reload")
	}
}

func TestCorruptKeyRefused(t *testing.T) {
	path := filepath.Join(t.TempDir(), "secret.key")
	os.WriteFile(path, []byte("not hex"), 0o600)
	if _, err := secrets.LoadOrCreate(path); err == nil {
		t.Fatal("accepted a corrupt key file")
	}
}

func TestClientSecretsDiffer(t *testing.T) {
	key := make([]byte, 32)
	a, b := secrets.ClientSecret(key, "atrium-connect"), secrets.ClientSecret(key, "atrium-workbench")
	if a == b || len(a) != 64 {
		t.Errorf("client secrets %q %q", a, b)
	}
}
