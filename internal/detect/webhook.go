package detect

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"time"
)

// Webhook routes alerts to an HTTP endpoint: a POST of JSON per alert
// carrying ids, rules, score and times, never patient data beyond the
// patient id (no notes). With a secret, the header X-Phivault-Signature
// is "sha256=" and the hex HMAC-SHA256 of the body under it.
//
// As a Channel under a Router (what serve uses), delivery follows the
// persisted outbox: at least once, retried until the endpoint takes it.
// Start and Send are a best-effort alternative without the store: a
// bounded queue, a failed POST retried three times, then logged and
// dropped (the alert itself stays in the store).
type Webhook struct {
	URL    string
	Secret []byte
	Client *http.Client
	Log    *slog.Logger
	queue  chan []byte
}

// webhookBody is what a webhook receives.
type webhookBody struct {
	ID        string    `json:"id"`
	CaseID    string    `json:"case_id"`
	UserID    string    `json:"user_id"`
	PatientID string    `json:"patient_id,omitempty"`
	Rules     []string  `json:"rules"`
	Score     float64   `json:"score"`
	Severity  string    `json:"severity"`
	Reasons   []string  `json:"reasons"`
	FirstSeen time.Time `json:"first_seen"`
	LastSeen  time.Time `json:"last_seen"`
	Status    string    `json:"status"`
}

// Start starts the sender, which stops when ctx ends.
func (w *Webhook) Start(ctx context.Context) {
	if w.Client == nil {
		w.Client = &http.Client{Timeout: 10 * time.Second}
	}
	if w.Log == nil {
		w.Log = slog.New(slog.DiscardHandler)
	}
	w.queue = make(chan []byte, 1024)
	go func() {
		for {
			select {
			case <-ctx.Done():
				return
			case b := <-w.queue:
				w.deliver(ctx, b)
			}
		}
	}()
}

// Send queues a; it never blocks (a full queue drops and logs). Use it as
// LiveConfig.Route after Start.
func (w *Webhook) Send(a *StoredAlert) {
	b, _ := json.Marshal(webhookBody{a.ID, a.CaseID, a.UserID, a.PatientID, a.Rules, a.Score, a.Severity, a.Reasons,
		a.FirstSeen, a.LastSeen, a.Status})
	select {
	case w.queue <- b:
	default:
		w.Log.Warn("detect: alert webhook queue full; alert not routed", "alert", a.ID)
	}
}

func (w *Webhook) deliver(ctx context.Context, body []byte) {
	var err error
	for try := range 4 {
		if try > 0 {
			select {
			case <-ctx.Done():
				return
			case <-time.After(time.Duration(try) * time.Second):
			}
		}
		if err = w.post(ctx, body, ""); err == nil {
			return
		}
	}
	w.Log.Error("detect: alert webhook failed", "err", err.Error())
}

var _ Channel = (*Webhook)(nil)

// Deliver POSTs d's alert once, with the header X-Phivault-Delivery set
// to d.MessageID() (the same on every resend): as a Channel under a
// Router, failures are retried from the persisted outbox, not dropped.
func (w *Webhook) Deliver(ctx context.Context, d *Delivery) error {
	a := d.Alert
	b, err := json.Marshal(webhookBody{a.ID, a.CaseID, a.UserID, a.PatientID, a.Rules, a.Score, a.Severity, a.Reasons,
		a.FirstSeen, a.LastSeen, a.Status})
	if err != nil {
		return err
	}
	return w.post(ctx, b, d.MessageID())
}

func (w *Webhook) post(ctx context.Context, body []byte, delivery string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, w.URL, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	if delivery != "" {
		req.Header.Set("X-Phivault-Delivery", delivery)
	}
	if len(w.Secret) > 0 {
		m := hmac.New(sha256.New, w.Secret)
		m.Write(body)
		req.Header.Set("X-Phivault-Signature", "sha256="+hex.EncodeToString(m.Sum(nil)))
	}
	client := w.Client
	if client == nil {
		client = &http.Client{Timeout: 10 * time.Second}
	}
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("webhook answered %s", resp.Status)
	}
	return nil
}
