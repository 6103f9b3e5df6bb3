package main

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/netip"
	"os/exec"
	"strings"
	"sync"
	"time"
)

// cmdDNS is the local cluster's stand-in for cluster DNS (k8s-local has no
// CoreDNS): an authoritative server for Service names only,
// <service>.<namespace>.svc and <service>.<namespace>.svc.cluster.local,
// answering A records with the Service's ClusterIP (headless Services: the
// ready pod IPs of their Endpoints). It learns them by running kubectl every
// second. Every other name gets NXDOMAIN, so pods still never resolve
// anything outside the cluster. The e2e starts it on the node IP and points
// the kubelet's resolv.conf at it before any pod exists.
func cmdDNS(args []string) error {
	fs := flag.NewFlagSet("dns", flag.ExitOnError)
	addr := fs.String("listen", "10.244.0.1:53", "UDP and TCP address to serve on")
	kubectl := fs.String("kubectl", "kubectl", "kubectl binary (KUBECONFIG from the environment)")
	every := fs.Duration("refresh", time.Second, "how often to re-read Services and Endpoints")
	fs.Parse(args)
	z := &zone{}
	if err := z.refresh(*kubectl); err != nil {
		return fmt.Errorf("first refresh: %w", err)
	}
	go func() {
		for range time.Tick(*every) {
			if err := z.refresh(*kubectl); err != nil {
				log.Printf("dns: refresh: %v (keeping the last records)", err)
			}
		}
	}()
	pc, err := net.ListenPacket("udp", *addr)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		return err
	}
	log.Printf("dns: serving Service names on %s (udp, tcp)", *addr)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				log.Printf("dns: accept: %v", err)
				return
			}
			go z.serveTCP(c)
		}
	}()
	buf := make([]byte, 1500)
	for {
		n, from, err := pc.ReadFrom(buf)
		if err != nil {
			return err
		}
		if resp := z.answer(buf[:n]); resp != nil {
			pc.WriteTo(resp, from)
		}
	}
}

type zone struct {
	mu      sync.RWMutex
	records map[string][]netip.Addr // lower-case name without the trailing dot
}

func (z *zone) refresh(kubectl string) error {
	out, err := exec.Command(kubectl, "get", "services,endpoints", "-A", "-o", "json").Output()
	if err != nil {
		return err
	}
	var list struct {
		Items []struct {
			Kind     string `json:"kind"`
			Metadata struct {
				Name      string `json:"name"`
				Namespace string `json:"namespace"`
			} `json:"metadata"`
			Spec struct {
				ClusterIP string `json:"clusterIP"`
			} `json:"spec"`
			Subsets []struct {
				Addresses []struct {
					IP string `json:"ip"`
				} `json:"addresses"`
			} `json:"subsets"`
		} `json:"items"`
	}
	if err := json.Unmarshal(out, &list); err != nil {
		return err
	}
	headless := map[string]bool{}
	recs := map[string][]netip.Addr{}
	for _, it := range list.Items {
		key := strings.ToLower(it.Metadata.Name + "." + it.Metadata.Namespace + ".svc")
		if it.Kind == "Service" {
			if ip, err := netip.ParseAddr(it.Spec.ClusterIP); err == nil && ip.Is4() {
				recs[key] = []netip.Addr{ip}
			} else if it.Spec.ClusterIP == "None" {
				headless[key] = true
			}
		}
	}
	for _, it := range list.Items {
		key := strings.ToLower(it.Metadata.Name + "." + it.Metadata.Namespace + ".svc")
		if it.Kind != "Endpoints" || !headless[key] {
			continue
		}
		for _, s := range it.Subsets {
			for _, a := range s.Addresses {
				if ip, err := netip.ParseAddr(a.IP); err == nil && ip.Is4() {
					recs[key] = append(recs[key], ip)
				}
			}
		}
		if recs[key] == nil {
			recs[key] = []netip.Addr{} // known name, no address yet
		}
	}
	for k, v := range recs {
		recs[k+".cluster.local"] = v
	}
	z.mu.Lock()
	z.records = recs
	z.mu.Unlock()
	return nil
}

func (z *zone) serveTCP(c net.Conn) {
	defer c.Close()
	for {
		c.SetDeadline(time.Now().Add(10 * time.Second))
		var l [2]byte
		if _, err := io.ReadFull(c, l[:]); err != nil {
			return
		}
		msg := make([]byte, binary.BigEndian.Uint16(l[:]))
		if _, err := io.ReadFull(c, msg); err != nil {
			return
		}
		resp := z.answer(msg)
		if resp == nil {
			return
		}
		out := binary.BigEndian.AppendUint16(nil, uint16(len(resp)))
		if _, err := c.Write(append(out, resp...)); err != nil {
			return
		}
	}
}

// answer builds the response to one query (one question), or nil for a
// message that is not a query.
func (z *zone) answer(q []byte) []byte {
	if len(q) < 12 || q[2]&0x80 != 0 || binary.BigEndian.Uint16(q[4:6]) != 1 {
		return nil
	}
	name, end, err := readName(q, 12)
	if err != nil || end+4 > len(q) {
		return nil
	}
	qtype := binary.BigEndian.Uint16(q[end : end+2])
	qclass := binary.BigEndian.Uint16(q[end+2 : end+4])
	z.mu.RLock()
	addrs, known := z.records[strings.ToLower(strings.TrimSuffix(name, "."))]
	z.mu.RUnlock()
	resp := make([]byte, 0, 512)
	resp = append(resp, q[0], q[1])             // id
	resp = append(resp, 0x84|(q[2]&0x01), 0x00) // QR, AA, RD echoed; rcode below
	resp = append(resp, 0, 1, 0, 0, 0, 0, 0, 0) // qd=1, an, ns, ar
	resp = append(resp, q[12:end+4]...)         // the question
	switch {
	case !known:
		resp[3] |= 3 // NXDOMAIN
	case qclass == 1 && (qtype == 1 || qtype == 255):
		for _, a := range addrs {
			ip := a.As4()
			resp = append(resp, 0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 5, 0, 4) // name ptr, A, IN, ttl 5, len 4
			resp = append(resp, ip[:]...)
		}
		binary.BigEndian.PutUint16(resp[6:8], uint16(len(addrs)))
	}
	return resp
}

func readName(m []byte, off int) (string, int, error) {
	var labels []string
	for {
		if off >= len(m) {
			return "", 0, errors.New("short name")
		}
		l := int(m[off])
		if l == 0 {
			return strings.Join(labels, ".") + ".", off + 1, nil
		}
		if l&0xc0 != 0 || off+1+l > len(m) {
			return "", 0, errors.New("compressed or long label in a question")
		}
		labels = append(labels, string(m[off+1:off+1+l]))
		off += 1 + l
	}
}
