package telemetry

import "sync"

// OtherLabel names the series that sums the label values past a bound.
const OtherLabel = "_other"

// MaxSeries bounds each label that clients choose (kinds in open mode,
// queues): /metrics stays small however many values they invent.
const MaxSeries = 100

// Bounded admits the first max distinct values of a label and maps every
// later one to OtherLabel, so a counter's series stay bounded for the
// life of the process.
type Bounded struct {
	mu   sync.Mutex
	seen map[string]bool
	max  int
}

// NewBounded admits max values.
func NewBounded(max int) *Bounded { return &Bounded{seen: map[string]bool{}, max: max} }

// Label is v if admitted, else OtherLabel.
func (b *Bounded) Label(v string) string {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.seen[v] {
		return v
	}
	if len(b.seen) >= b.max {
		return OtherLabel
	}
	b.seen[v] = true
	return v
}
