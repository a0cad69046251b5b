package e2e_test

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// sdkScript drives the real posit-sdk against Atrium Connect. Each step
// asserts in Python and prints "OK <step>"; the Go test checks that every
// step got there.
const sdkScript = `
import os, requests
from posit import connect
from posit.connect.errors import ClientError

url = os.environ["CONNECT_SERVER"]
client = connect.Client(url, os.environ["CONNECT_API_KEY"])
alice_client = connect.Client(url, os.environ["ALICE_KEY"])

def ok(step):
    print("OK " + step, flush=True)

def status_of(fn):
    try:
        fn()
    except ClientError as e:
        return e.http_status
    return 200

me = client.me
assert me["username"] == "admin", me
assert me["guid"], me
ok("me")

# Users, from the suite's directory.
users = client.users.find()
names = sorted(u["username"] for u in users)
assert {"admin", "alice", "bob"} <= set(names), names
assert client.users.count() == len(users)
alice = client.users.find_one(prefix="ALI")
assert alice["username"] == "alice", alice
bob = client.users.get(next(u["guid"] for u in users if u["username"] == "bob"))
assert bob["username"] == "bob"
assert [u["username"] for u in client.users.find(user_role="viewer")] == ["bob"]
ok("users")

# Content create/find/update/get/delete.
item = client.content.create(name="sdk-item", title="SDK item")
assert item["name"] == "sdk-item" and item["title"] == "SDK item", item
assert [c["guid"] for c in client.content.find(name="sdk-item")] == [item["guid"]]
item.update(title="Renamed", description="from posit-sdk", access_type="acl")
got = client.content.get(item["guid"])
assert got["title"] == "Renamed" and got["description"] == "from posit-sdk", got
assert got["owner"]["username"] == "admin", got
anon = client.content.create()
assert len(anon["name"]) >= 3
anon.delete()
assert status_of(lambda: client.content.get(anon["guid"])) == 404
ok("content")

# Environment variables: names only come back.
env = item.environment_variables
env.update(DATABASE_URL="postgres://db", API_TOKEN="s3cret")
assert sorted(env.find()) == ["API_TOKEN", "DATABASE_URL"], env.find()
del env["API_TOKEN"]
assert env.find() == ["DATABASE_URL"], env.find()
env.create("KEEP", "1")
assert len(env) == 2
env.clear()
assert env.find() == []
env["KEEP"] = "1"
assert list(env) == ["KEEP"]
ok("env")

# Bundles: upload, deploy (activate), active, download, delete.
bundle_path = os.environ["BUNDLE"]
bundle = item.bundles.create(bundle_path)
assert bundle["content_guid"] == item["guid"] and bundle["active"] is False, bundle
assert bundle["size"] == os.path.getsize(bundle_path), bundle
assert len(bundle.metadata["archive_md5"]) == 32, bundle
task = bundle.deploy()
task.wait_for()
assert task.is_finished and task.error_code in (None, 0), dict(task)
active = item.bundles.active()
assert active is not None and active["id"] == bundle["id"], active
out = os.path.join(os.environ["WORK"], "download.tar.gz")
bundle.download(out)
assert open(out, "rb").read() == open(bundle_path, "rb").read()
page = requests.get(url + "/content/" + item["guid"] + "/", headers={"Authorization": "Key " + os.environ["CONNECT_API_KEY"]})
assert page.status_code == 200 and "posit-sdk bundle" in page.text, (page.status_code, page.text)
second = item.bundles.create(bundle_path)
assert len(item.bundles.find()) == 2
second.delete()
assert [b["id"] for b in item.bundles.find()] == [bundle["id"]]
ok("bundles")

# Groups and their members.
group = client.groups.create(name="sdk-team")
group.members.add(alice)
group.members.add(user_guid=bob["guid"])
assert sorted(u["username"] for u in group.members.find()) == ["alice", "bob"]
assert group.members.count() == 2
assert client.groups.find_one(prefix="SDK")["guid"] == group["guid"]
assert client.groups.get(group["guid"])["name"] == "sdk-team"
assert client.groups.count() == 1
group.members.delete(bob)
assert [u["username"] for u in group.members.find()] == ["alice"]
ok("groups")

# Permissions decide who else sees the content.
assert status_of(lambda: alice_client.content.get(item["guid"])) == 404
perm = item.permissions.create(alice, role="viewer")
assert perm["principal_guid"] == alice["guid"] and perm["principal_type"] == "user" and perm["role"] == "viewer", perm
assert alice_client.content.get(item["guid"])["guid"] == item["guid"]
assert item["guid"] in [c["guid"] for c in alice_client.content.find()]
assert status_of(lambda: alice_client.content.get(item["guid"]).update(title="nope")) == 403
gperm = item.permissions.create(group, role="viewer")
assert gperm["principal_type"] == "group"
assert item.permissions.count() == 2
perm.update(role="owner")
assert item.permissions.get(perm["id"])["role"] == "owner"
alice_client.content.get(item["guid"]).update(title="By Alice")
assert client.content.get(item["guid"])["title"] == "By Alice"
item.permissions.destroy(alice)
item.permissions.destroy(gperm)
assert item.permissions.find() == []
assert status_of(lambda: alice_client.content.get(item["guid"])) == 404
group.delete()
assert client.groups.count() == 0
ok("permissions")

# Tags and vanity URLs.
dept = client.tags.create(name="sdk-dept")
sales = client.tags.create(name="sdk-sales", parent=dept)
assert sales["parent_id"] == dept["id"], sales
item.tags.add(sales)
assert [t["id"] for t in item.tags.find()] == [sales["id"]]
assert [c["guid"] for c in sales.content_items.find()] == [item["guid"]]
assert [t["id"] for t in client.tags.find(parent=dept)] == [sales["id"]]
item.vanity = "sdk/vanity"
assert item.vanity == "/sdk/vanity/", item.vanity
assert [v["path"] for v in client.vanities.all()] == ["/sdk/vanity/"]
full = client.content.get(item["guid"])
assert full["vanity_url"].endswith("/sdk/vanity/") and [t["id"] for t in full["tags"]] == [sales["id"]], full
del item.vanity
assert item.vanity is None
item.tags.delete(sales)
assert item.tags.find() == []
dept.destroy()
assert client.tags.find(name="sdk-sales") == []
ok("tags-vanity")

item.delete()
assert client.content.find(name="sdk-item") == []
ok("done")
`

// TestConnectSDK is a script with the real posit-sdk against the suite:
// users and groups from the directory, content, environment variables,
// bundles, permissions, tags and vanity URLs.
func TestConnectSDK(t *testing.T) {
	venv := connectClients(t)
	p, dataDir := suiteWithIdentity(t)
	url := p.urls["Connect"]
	token := func(user string) string {
		out := atriumCLI(t, dataDir, "", "users", "token", user, "--product", "connect")
		if m := regexp.MustCompile(`atr_\S+`).FindString(out); m != "" {
			return m
		}
		return strings.TrimSpace(out)
	}
	atriumCLI(t, dataDir, "", "users", "add", "alice", "--role", "publisher", "--name", "Alice Liddell")
	atriumCLI(t, dataDir, "", "users", "add", "bob", "--role", "viewer", "--name", "Bob Builder")

	work := t.TempDir()
	bundle := filepath.Join(work, "bundle.tar.gz")
	if err := os.WriteFile(bundle, staticBundle(t, map[string]string{
		"manifest.json": `{"version":1,"metadata":{"appmode":"static","primary_html":"index.html","entrypoint":"index.html"},"files":{"index.html":{"checksum":"x"}}}`,
		"index.html":    "<h1>posit-sdk bundle</h1>",
	}), 0o600); err != nil {
		t.Fatal(err)
	}
	script := filepath.Join(work, "sdk.py")
	if err := os.WriteFile(script, []byte(sdkScript), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(filepath.Join(venv, "bin", "python"), script)
	cmd.Env = append(os.Environ(),
		"CONNECT_SERVER="+url, "CONNECT_API_KEY="+token("admin"), "ALICE_KEY="+token("alice"),
		"BUNDLE="+bundle, "WORK="+work, "PYTHONWARNINGS=ignore")
	out, err := cmd.CombinedOutput()
	t.Logf("posit-sdk script:\n%s", out)
	if err != nil {
		t.Fatalf("posit-sdk script failed: %v", err)
	}
	for _, step := range []string{"me", "users", "content", "env", "bundles", "groups", "permissions", "tags-vanity", "done"} {
		if !strings.Contains(string(out), "OK "+step+"\n") {
			t.Errorf("posit-sdk step %q did not pass", step)
		}
	}
}

// staticBundle is a .tar.gz of files (name → content).
func staticBundle(t *testing.T, files map[string]string) []byte {
	t.Helper()
	var buf bytes.Buffer
	gz := gzip.NewWriter(&buf)
	tw := tar.NewWriter(gz)
	for _, name := range []string{"manifest.json", "index.html"} {
		content, ok := files[name]
		if !ok {
			continue
		}
		if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: int64(len(content)), Typeflag: tar.TypeReg}); err != nil {
			t.Fatal(err)
		}
		tw.Write([]byte(content))
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := gz.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}
