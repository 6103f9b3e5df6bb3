package emailkind

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"io"
	"math/big"
	"mime"
	"mime/multipart"
	"net"
	"net/mail"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"

	"github.com/spoolq/spool/shared/jobqueue"
	"github.com/spoolq/spool/shared/jobqueue/jobqueuetest"
	"github.com/spoolq/spool/shared/pgtest"
)

// delivery is one message the test server accepted.
type delivery struct {
	from string
	rcpt []string
	data []byte
	tls  bool // the message came over TLS
}

// mailServer is a real SMTP server (go-smtp) on a free loopback port
// that records what it accepts. reply, if set, decides the answer to
// each DATA (n counts them from 1): nil accepts.
type mailServer struct {
	addr  string
	mu    sync.Mutex
	got   []delivery
	datas int
	reply func(n int) error
	auths []string // user names that authenticated
}

type serverOpts struct {
	tls      *tls.Config // STARTTLS offered with this config
	implicit bool        // TLS from the first byte (smtps) instead
	user     string      // AUTH PLAIN required with this user and pass
	pass     string
}

func startServer(t *testing.T, o serverOpts) *mailServer {
	t.Helper()
	ms := &mailServer{}
	s := smtp.NewServer(smtp.BackendFunc(func(c *smtp.Conn) (smtp.Session, error) {
		return &session{ms: ms, o: o, conn: c}, nil
	}))
	s.Domain = "localhost"
	s.ReadTimeout, s.WriteTimeout = 10*time.Second, 10*time.Second
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if o.implicit {
		l = tls.NewListener(l, o.tls)
	} else {
		s.TLSConfig = o.tls
	}
	ms.addr = l.Addr().String()
	done := make(chan struct{})
	go func() { _ = s.Serve(l); close(done) }()
	t.Cleanup(func() { _ = s.Close(); <-done })
	return ms
}

func (ms *mailServer) deliveries() []delivery {
	ms.mu.Lock()
	defer ms.mu.Unlock()
	return append([]delivery(nil), ms.got...)
}

type session struct {
	ms     *mailServer
	o      serverOpts
	conn   *smtp.Conn
	authed bool
	d      delivery
}

func (s *session) AuthMechanisms() []string {
	if s.o.user == "" {
		return nil
	}
	return []string{sasl.Plain}
}

func (s *session) Auth(string) (sasl.Server, error) {
	return sasl.NewPlainServer(func(_, user, pass string) error {
		if user != s.o.user || pass != s.o.pass {
			return errors.New("bad credentials")
		}
		s.authed = true
		s.ms.mu.Lock()
		s.ms.auths = append(s.ms.auths, user)
		s.ms.mu.Unlock()
		return nil
	}), nil
}

func (s *session) Mail(from string, _ *smtp.MailOptions) error {
	if s.o.user != "" && !s.authed {
		return smtp.ErrAuthRequired
	}
	s.d = delivery{from: from}
	return nil
}

func (s *session) Rcpt(to string, _ *smtp.RcptOptions) error {
	if strings.HasPrefix(to, "nobody@") {
		return &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: "<" + to + ">: no such user"}
	}
	s.d.rcpt = append(s.d.rcpt, to)
	return nil
}

func (s *session) Data(r io.Reader) error {
	b, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	s.ms.mu.Lock()
	defer s.ms.mu.Unlock()
	s.ms.datas++
	if s.ms.reply != nil {
		if err := s.ms.reply(s.ms.datas); err != nil {
			return err
		}
	}
	s.d.data = b
	_, s.d.tls = s.conn.TLSConnectionState()
	s.ms.got = append(s.ms.got, s.d)
	return nil
}

func (s *session) Reset()        { s.d = delivery{} }
func (s *session) Logout() error { return nil }

// bundle is a database, a client and a worker running send_email against
// a test server.
type bundle struct {
	client *jobqueue.Client
	ms     *mailServer
	sender *sender
}

func setup(t *testing.T, smtpURL string, ms *mailServer, tune func(*sender)) *bundle {
	t.Helper()
	db := pgtest.New(t)
	kinds := jobqueue.NewKinds()
	client, err := jobqueue.NewClient(db.Pool, &jobqueue.ClientOpts{Kinds: kinds})
	if err != nil {
		t.Fatal(err)
	}
	srv, err := Settings{SMTPURL: smtpURL, SMTPFrom: "Spool <noreply@spool.test>"}.server()
	if err != nil {
		t.Fatal(err)
	}
	s := &sender{srv: srv, client: client}
	if tune != nil {
		tune(s)
	}
	s.add(kinds)
	jobqueuetest.StartWorker(t, client, kinds, jobqueue.WorkerConfig{ID: "email-test",
		Queues: []jobqueue.QueueConfig{{Name: jobqueue.DefaultQueue, Concurrency: 2}}, PollInterval: 50 * time.Millisecond})
	return &bundle{client: client, ms: ms, sender: s}
}

// enqueue adds a send_email job that retries after 50 ms.
func (b *bundle) enqueue(t *testing.T, e Email) int64 {
	t.Helper()
	res, err := b.client.Enqueue(context.Background(), jobqueue.EnqueueParams{Kind: "send_email", Payload: e,
		BackoffBase: 50 * time.Millisecond, BackoffMax: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	return res.Job.ID
}

func (b *bundle) wait(t *testing.T, id int64, want jobqueue.Status) *jobqueue.Job {
	t.Helper()
	return jobqueuetest.WaitJob(t, b.client, id, 15*time.Second, func(j *jobqueue.Job) bool { return j.Status == want })
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

var receipt = Email{To: Addresses{"Ada Lovelace <ada@example.com>", "bob@example.com"}, Cc: Addresses{"carol@example.com"},
	ReplyTo: "help@spool.test", Subject: "Your receipt — №42", Text: "Thanks for your order.\n", HTML: "<p>Thanks for your <b>order</b>.</p>"}

// checkMessage parses a delivered message and compares its headers and
// both bodies with e's.
func checkMessage(t *testing.T, d delivery, jobID int64, e Email) {
	t.Helper()
	if d.from != "noreply@spool.test" {
		t.Errorf("MAIL FROM %q, want noreply@spool.test", d.from)
	}
	if got, want := strings.Join(d.rcpt, ","), "ada@example.com,bob@example.com,carol@example.com"; got != want {
		t.Errorf("RCPT TO %s, want %s", got, want)
	}
	m, err := mail.ReadMessage(bytes.NewReader(d.data))
	if err != nil {
		t.Fatalf("delivered message does not parse: %v\n%s", err, d.data)
	}
	dec := new(mime.WordDecoder)
	subject, err := dec.DecodeHeader(m.Header.Get("Subject"))
	if err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]string{"Message-ID": fmt.Sprintf("<spool-job-%d@spool.test>", jobID), "Subject": e.Subject} {
		got := m.Header.Get(name)
		if name == "Subject" {
			got = subject
		}
		if got != want {
			t.Errorf("%s: %q, want %q", name, got, want)
		}
	}
	addrs := func(h string) string {
		list, err := m.Header.AddressList(h)
		if err != nil {
			t.Fatalf("%s: %v", h, err)
		}
		var out []string
		for _, a := range list {
			out = append(out, a.String())
		}
		return strings.Join(out, ", ")
	}
	for h, want := range map[string]string{"From": `"Spool" <noreply@spool.test>`, "To": `"Ada Lovelace" <ada@example.com>, <bob@example.com>`,
		"Cc": "<carol@example.com>", "Reply-To": "<help@spool.test>"} {
		if got := addrs(h); got != want {
			t.Errorf("%s: %s, want %s", h, got, want)
		}
	}
	if _, err := m.Header.Date(); err != nil {
		t.Errorf("Date: %v", err)
	}
	mt, params, err := mime.ParseMediaType(m.Header.Get("Content-Type"))
	if err != nil || mt != "multipart/alternative" {
		t.Fatalf("Content-Type %q (%v), want multipart/alternative", m.Header.Get("Content-Type"), err)
	}
	bodies := map[string]string{}
	mr := multipart.NewReader(m.Body, params["boundary"])
	for {
		p, err := mr.NextPart() // decodes quoted-printable
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(p)
		ct, _, _ := mime.ParseMediaType(p.Header.Get("Content-Type"))
		bodies[ct] = strings.ReplaceAll(string(b), "\r\n", "\n")
	}
	if bodies["text/plain"] != e.Text || bodies["text/html"] != e.HTML {
		t.Errorf("bodies %q, want text %q and html %q", bodies, e.Text, e.HTML)
	}
}

func TestSendsOneMessageWithHeadersAndBodies(t *testing.T) {
	t.Parallel()
	ms := startServer(t, serverOpts{})
	b := setup(t, "smtp://"+ms.addr, ms, nil)
	id := b.enqueue(t, receipt)
	b.wait(t, id, jobqueue.StatusCompleted)
	got := ms.deliveries()
	if len(got) != 1 {
		t.Fatalf("%d deliveries, want 1", len(got))
	}
	checkMessage(t, got[0], id, receipt)
}

// A 451 to the first DATA: the job is retried and the message arrives
// once, on the second attempt.
func TestTemporaryReplyIsRetriedAndDeliveredOnce(t *testing.T) {
	t.Parallel()
	ms := startServer(t, serverOpts{})
	ms.reply = func(n int) error {
		if n == 1 {
			return &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 3, 0}, Message: "try again later"}
		}
		return nil
	}
	b := setup(t, "smtp://"+ms.addr, ms, nil)
	id := b.enqueue(t, receipt)
	j := b.wait(t, id, jobqueue.StatusCompleted)
	if j.Attempts != 2 || len(j.Errors) != 1 || !strings.Contains(j.Errors[0].Error, "451") {
		t.Fatalf("attempts %d, errors %+v; want 2 attempts, the first failed with 451", j.Attempts, j.Errors)
	}
	if got := ms.deliveries(); len(got) != 1 {
		t.Fatalf("%d deliveries, want 1", len(got))
	}
}

// The server accepted the message, the ledger committed, and then the
// attempt failed: the retry finds the effect recorded and sends nothing.
func TestRetryAfterCommittedSendDoesNotSendAgain(t *testing.T) {
	t.Parallel()
	ms := startServer(t, serverOpts{})
	var mu sync.Mutex
	failed := map[int64]bool{}
	b := setup(t, "smtp://"+ms.addr, ms, func(s *sender) {
		s.afterCommit = func(j *jobqueue.Job) error {
			mu.Lock()
			defer mu.Unlock()
			if !failed[j.ID] {
				failed[j.ID] = true
				return errors.New("worker failed after the send (test)")
			}
			return nil
		}
	})
	id := b.enqueue(t, receipt)
	j := b.wait(t, id, jobqueue.StatusCompleted)
	if j.Attempts != 2 {
		t.Fatalf("attempts %d, want 2", j.Attempts)
	}
	got := ms.deliveries()
	if len(got) != 1 {
		t.Fatalf("%d deliveries across the retry, want 1", len(got))
	}
	checkMessage(t, got[0], id, receipt)
}

// The window the ledger cannot close: accepted by the server, then the
// attempt fails before the ledger commits. The retry sends again, with
// the same Message-ID, so the receiver can tell it is the same message.
func TestFailureBeforeCommitResendsWithSameMessageID(t *testing.T) {
	t.Parallel()
	ms := startServer(t, serverOpts{})
	var mu sync.Mutex
	failed := false
	b := setup(t, "smtp://"+ms.addr, ms, func(s *sender) {
		s.afterSend = func(*jobqueue.Job) error {
			mu.Lock()
			defer mu.Unlock()
			if !failed {
				failed = true
				return errors.New("crash before the ledger commit (test)")
			}
			return nil
		}
	})
	id := b.enqueue(t, receipt)
	b.wait(t, id, jobqueue.StatusCompleted)
	got := ms.deliveries()
	if len(got) != 2 {
		t.Fatalf("%d deliveries, want 2 (the documented duplicate)", len(got))
	}
	for _, d := range got {
		checkMessage(t, d, id, receipt)
	}
}

// A 550 to a recipient fails the job at once; its error names the code,
// not the address, and never the password.
func TestPermanentReplyKillsJobWithoutAddresses(t *testing.T) {
	t.Parallel()
	ms := startServer(t, serverOpts{})
	b := setup(t, "smtp://user:s3cret-pass@"+ms.addr, ms, func(s *sender) {
		s.srv.user = "" // the plain server offers no AUTH; the URL is there for the redaction
	})
	id := b.enqueue(t, Email{To: Addresses{"nobody@example.com"}, Subject: "hi", Text: "x"})
	j := b.wait(t, id, jobqueue.StatusDead)
	if j.Attempts != 1 || len(j.Errors) != 1 {
		t.Fatalf("attempts %d, errors %+v; want 1 attempt", j.Attempts, j.Errors)
	}
	msg := j.Errors[0].Error
	t.Logf("error: %s", msg)
	if !strings.Contains(msg, "550") || strings.Contains(msg, "nobody@") || strings.Contains(msg, "s3cret") {
		t.Fatalf("error %q: want the 550, no address and no password", msg)
	}
	if len(ms.deliveries()) != 0 {
		t.Fatal("a refused message was delivered")
	}
}

// A server that cannot be reached: retried, not dead.
func TestConnectionErrorIsRetried(t *testing.T) {
	t.Parallel()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	_ = l.Close()
	b := setup(t, "smtp://"+addr, nil, nil)
	id := b.enqueue(t, receipt)
	b.wait(t, id, jobqueue.StatusRetrying)
}

// STARTTLS with a self-signed certificate and AUTH PLAIN over it.
func TestStartTLSAndAuth(t *testing.T) {
	t.Parallel()
	serverTLS, roots := selfSigned(t)
	ms := startServer(t, serverOpts{tls: serverTLS, user: "spool", pass: "p@ss/word"})
	b := setup(t, "smtp://spool:p%40ss%2Fword@"+ms.addr, ms, func(s *sender) {
		s.srv.tls = &tls.Config{RootCAs: roots, ServerName: "127.0.0.1", MinVersion: tls.VersionTLS12}
	})
	id := b.enqueue(t, receipt)
	b.wait(t, id, jobqueue.StatusCompleted)
	got := ms.deliveries()
	ms.mu.Lock()
	logins := len(ms.auths)
	ms.mu.Unlock()
	if len(got) != 1 || logins != 1 || !got[0].tls {
		t.Fatalf("%d deliveries, %d logins; want 1 and 1, over TLS", len(got), logins)
	}
	checkMessage(t, got[0], id, receipt)
}

// smtps://: TLS from the first byte.
func TestImplicitTLS(t *testing.T) {
	t.Parallel()
	serverTLS, roots := selfSigned(t)
	ms := startServer(t, serverOpts{tls: serverTLS, implicit: true})
	b := setup(t, "smtps://"+ms.addr, ms, func(s *sender) {
		s.srv.tls = &tls.Config{RootCAs: roots, ServerName: "127.0.0.1", MinVersion: tls.VersionTLS12}
	})
	id := b.enqueue(t, receipt)
	b.wait(t, id, jobqueue.StatusCompleted)
	got := ms.deliveries()
	if len(got) != 1 || !got[0].tls {
		t.Fatalf("%d deliveries, want 1 over TLS", len(got))
	}
	checkMessage(t, got[0], id, receipt)
}

func selfSigned(t *testing.T) (*tls.Config, *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "127.0.0.1"},
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AddCert(cert)
	return &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}, MinVersion: tls.VersionTLS12}, roots
}
