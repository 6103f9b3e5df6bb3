package httpkind_test

import (
	"fmt"
	"log"
	"net/netip"

	"github.com/spoolq/spool/shared/httpkind"
	"github.com/spoolq/spool/shared/jobqueue"
)

// A worker of your own runs the http kind as the stock worker does, from
// the same settings (workerapp reads them when given &settings).
func ExampleAdd() {
	kinds := jobqueue.NewKinds()
	settings := httpkind.Settings{AllowedHosts: "hooks.example.com, 10.20.0.0/16"}
	if err := httpkind.Add(kinds, settings); err != nil {
		log.Fatal(err)
	}
	fmt.Println(kinds.Names())
	// Output: [http]
}

// The allow list decides on the address connected to: a listed name may
// not resolve to a special address, a CIDR allows whatever it holds.
func ExampleAllowList_Check() {
	allow, err := httpkind.ParseAllowList("hooks.example.com, 10.20.0.0/16")
	if err != nil {
		log.Fatal(err)
	}
	for _, c := range []struct{ host, ip string }{
		{"hooks.example.com", "93.184.216.34"},
		{"hooks.example.com", "169.254.169.254"},
		{"billing.internal", "10.20.3.4"},
		{"other.example.com", "93.184.216.34"},
	} {
		fmt.Printf("%s at %s: %v\n", c.host, c.ip, allow.Check(c.host, "443", netip.MustParseAddr(c.ip)))
	}
	// Output:
	// hooks.example.com at 93.184.216.34: <nil>
	// hooks.example.com at 169.254.169.254: destination hooks.example.com (169.254.169.254) refused: a loopback, private, link-local or otherwise special address, allowed only by a CIDR in SPOOL_HTTP_ALLOWED_HOSTS
	// billing.internal at 10.20.3.4: <nil>
	// other.example.com at 93.184.216.34: destination other.example.com (93.184.216.34) refused: not in SPOOL_HTTP_ALLOWED_HOSTS
}
