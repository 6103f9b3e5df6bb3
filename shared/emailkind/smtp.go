package emailkind

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/mail"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	gomail "github.com/wneessen/go-mail"

	"github.com/spoolq/spool/shared/jobqueue"
)

// Settings are the kind's SPOOL_* variables, read by the worker binary.
type Settings struct {
	SMTPURL  string `envconfig:"SMTP_URL" desc:"SMTP server of the send_email kind: smtp://user:pass@host:587 (STARTTLS when offered) or smtps://user:pass@host:465 (implicit TLS), no user: no AUTH; empty: the kind is off"`
	SMTPFrom string `envconfig:"SMTP_FROM" desc:"From address of send_email (e.g. Spool <noreply@example.com>); its domain ends the Message-ID; required with SPOOL_SMTP_URL"`
}

// Enabled reports whether the kind is configured (SPOOL_SMTP_URL set).
func (s Settings) Enabled() bool { return s.SMTPURL != "" }

// Check refuses an SMTP URL or From address that cannot work; its errors
// never carry the password.
func (s Settings) Check() error {
	if !s.Enabled() {
		return nil
	}
	_, err := s.server()
	return err
}

// server is the parsed configuration.
type server struct {
	host     string
	port     int
	implicit bool // smtps: TLS from the first byte
	user     string
	pass     string
	from     *mail.Address
	domain   string      // of from, for the Message-ID
	redacted string      // the URL without its password, for errors
	tls      *tls.Config // nil: the system's roots (tests set their own)
}

func (s Settings) server() (*server, error) {
	u, err := url.Parse(s.SMTPURL)
	if err != nil {
		return nil, errors.New("configuration: SPOOL_SMTP_URL is not a URL") // url's error would quote the password
	}
	srv := &server{host: u.Hostname(), redacted: u.Redacted()}
	switch u.Scheme {
	case "smtp":
		srv.port = 587
	case "smtps":
		srv.port, srv.implicit = 465, true
	default:
		return nil, fmt.Errorf("configuration: SPOOL_SMTP_URL %s: the scheme must be smtp or smtps", srv.redacted)
	}
	if srv.host == "" {
		return nil, fmt.Errorf("configuration: SPOOL_SMTP_URL %s: no host", srv.redacted)
	}
	if p := u.Port(); p != "" {
		if srv.port, err = strconv.Atoi(p); err != nil || srv.port < 1 || srv.port > 65535 {
			return nil, fmt.Errorf("configuration: SPOOL_SMTP_URL %s: bad port", srv.redacted)
		}
	}
	if (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" {
		return nil, fmt.Errorf("configuration: SPOOL_SMTP_URL %s: no path, query or fragment is understood", srv.redacted)
	}
	if u.User != nil {
		srv.user = u.User.Username()
		srv.pass, _ = u.User.Password()
	}
	if s.SMTPFrom == "" {
		return nil, errors.New("configuration: SPOOL_SMTP_FROM is required with SPOOL_SMTP_URL")
	}
	if srv.from, err = mail.ParseAddress(s.SMTPFrom); err != nil {
		return nil, errors.New("configuration: SPOOL_SMTP_FROM is not an email address")
	}
	_, srv.domain, _ = strings.Cut(srv.from.Address, "@")
	return srv, nil
}

// Add registers send_email in kinds, sending through the server of s
// with client's effect ledger. s must be Enabled and pass Check.
func Add(kinds *jobqueue.Kinds, client *jobqueue.Client, s Settings) error {
	srv, err := s.server()
	if err != nil {
		return err
	}
	(&sender{srv: srv, client: client}).add(kinds)
	return nil
}

// sender is the kind's handler.
type sender struct {
	srv    *server
	client *jobqueue.Client
	// Test seams: afterSend runs after the server accepted the message,
	// inside the ledger's transaction (before its commit); afterCommit
	// after the commit. An error from either fails the attempt.
	afterSend, afterCommit func(*jobqueue.Job) error
}

func (s *sender) add(kinds *jobqueue.Kinds) {
	jobqueue.AddKind(kinds, s.send, &jobqueue.KindOpts{Description: "sends an email through the SMTP server of SPOOL_SMTP_URL, once per job"})
}

// MessageID is the Message-ID (without angle brackets) of job's email:
// the same on every attempt, so a message sent twice can be recognised.
func MessageID(jobID int64, fromDomain string) string {
	return fmt.Sprintf("spool-job-%d@%s", jobID, fromDomain)
}

func (s *sender) send(ctx context.Context, job *jobqueue.Job, e Email) error {
	msg, err := s.message(job, e)
	if err != nil {
		return jobqueue.Permanent(err)
	}
	key := jobqueue.EffectKey(job, "smtp")
	var sendErr error
	sent, err := s.client.Once(ctx, key, job.ID, func(pgx.Tx) error {
		if sendErr = s.deliver(ctx, msg); sendErr != nil {
			return sendErr
		}
		if s.afterSend != nil {
			return s.afterSend(job)
		}
		return nil
	})
	if sendErr != nil {
		return classify(sendErr, s.srv.redacted)
	}
	if err != nil {
		return err // the ledger's commit failed: the retry sends again, with the same Message-ID
	}
	jobqueue.Logger(ctx).Debug("email sent", "effect_key", key, "already_sent", !sent)
	if s.afterCommit != nil {
		return s.afterCommit(job)
	}
	return nil
}

func (s *sender) message(job *jobqueue.Job, e Email) (*gomail.Msg, error) {
	m := gomail.NewMsg()
	if err := m.FromFormat(s.srv.from.Name, s.srv.from.Address); err != nil {
		return nil, errors.New("from: not an email address")
	}
	if err := m.To(e.To...); err != nil {
		return nil, errors.New("to: not an email address")
	}
	if len(e.Cc) > 0 {
		if err := m.Cc(e.Cc...); err != nil {
			return nil, errors.New("cc: not an email address")
		}
	}
	if e.ReplyTo != "" {
		if err := m.ReplyTo(e.ReplyTo); err != nil {
			return nil, errors.New("reply_to: not an email address")
		}
	}
	m.Subject(e.Subject)
	m.SetMessageIDWithValue(MessageID(job.ID, s.srv.domain))
	m.SetDate()
	switch {
	case e.Text != "" && e.HTML != "":
		m.SetBodyString(gomail.TypeTextPlain, e.Text)
		m.AddAlternativeString(gomail.TypeTextHTML, e.HTML)
	case e.HTML != "":
		m.SetBodyString(gomail.TypeTextHTML, e.HTML)
	default:
		m.SetBodyString(gomail.TypeTextPlain, e.Text)
	}
	return m, nil
}

// deliver sends msg over one connection: STARTTLS when the server offers
// it (smtp://), TLS from the start (smtps://), AUTH when a user is set.
func (s *sender) deliver(ctx context.Context, msg *gomail.Msg) error {
	tlsConf := s.srv.tls
	if tlsConf == nil {
		tlsConf = &tls.Config{ServerName: s.srv.host, MinVersion: tls.VersionTLS12}
	}
	opts := []gomail.Option{gomail.WithPort(s.srv.port), gomail.WithTimeout(30 * time.Second), gomail.WithTLSConfig(tlsConf)}
	if s.srv.implicit {
		opts = append(opts, gomail.WithSSL())
	} else {
		opts = append(opts, gomail.WithTLSPolicy(gomail.TLSOpportunistic))
	}
	if s.srv.user != "" {
		opts = append(opts, gomail.WithSMTPAuth(gomail.SMTPAuthAutoDiscover),
			gomail.WithUsername(s.srv.user), gomail.WithPassword(s.srv.pass))
	}
	c, err := gomail.NewClient(s.srv.host, opts...)
	if err != nil {
		return err
	}
	return c.DialAndSendWithContext(ctx, msg)
}

// classify turns a delivery failure into the job's outcome: a 5xx reply
// to the message (MAIL, RCPT, DATA) fails it for good; 4xx replies,
// connection, TLS and AUTH failures (the server's or the settings' fault,
// not the message's) are retried with backoff. The message names the
// server without its password, keeps at most maxErrorDetail bytes, and
// has email addresses masked (SMTP replies quote recipients).
func classify(err error, server string) error {
	out := fmt.Errorf("smtp %s: %s", server, capDetail(maskAddresses(err.Error())))
	var se *gomail.SendError
	if errors.As(err, &se) && !se.IsTemp() && se.ErrorCode() >= 500 && se.ErrorCode() < 600 && se.Reason != gomail.ErrConnCheck {
		return jobqueue.Permanent(out)
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return fmt.Errorf("%w (timeout)", out)
	}
	return out
}

var addressPattern = regexp.MustCompile(`[^\s<>,;:"'()\[\]]+@[^\s<>,;:"'()\[\]]+`)

func maskAddresses(s string) string { return addressPattern.ReplaceAllString(s, "[address]") }

func capDetail(s string) string {
	if len(s) <= maxErrorDetail {
		return s
	}
	cut := maxErrorDetail
	for cut > 0 && !utf8RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…"
}

func utf8RuneStart(b byte) bool { return b&0xC0 != 0x80 }
