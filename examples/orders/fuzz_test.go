package orders_test

import (
	"encoding/json"
	"errors"
	"net/mail"
	"reflect"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/spoolq/spool/examples/orders"
	"github.com/spoolq/spool/shared/apiext"
)

// decodeOrder is POST /v1/orders up to the transaction: the API's strict
// decode (apiext.Unmarshal, as the route's Decode) and the order's
// validation.
func decodeOrder(body []byte) (orders.NewOrder, error) {
	var n orders.NewOrder
	if err := apiext.Unmarshal(body, &n); err != nil {
		return orders.NewOrder{}, decodeError{err}
	}
	return n, n.Validate()
}

type decodeError struct{ error }

func isDecodeError(err error) bool {
	var d decodeError
	return errors.As(err, &d)
}

// FuzzOrderRequest: an order is refused as invalid, or is within every
// bound the demo's tables hold, and survives a round trip.
func FuzzOrderRequest(f *testing.F) {
	const card = `"card_number":"4242 4242 4242 4242"`
	for _, s := range []string{
		`{"customer_email":"ada@example.com",` + card + `,"items":[{"sku":"mug","quantity":2},{"sku":"stickers","quantity":1}]}`,
		`{"customer_email":"a.b+c@sub.example.co.uk","card_number":"424242424242","items":[{"sku":"poster","quantity":1000}]}`,
		`{"customer_email":"ada@[192.0.2.1]","card_number":"4242424242424242424","items":[{"sku":"` + strings.Repeat("s", 64) + `","quantity":1}]}`,
		`{"customer_email":"\"a b\"@example.com",` + card + `,"items":[{"sku":"mug","quantity":1}]}`,
		`{"customer_email":"Ada <ada@example.com>",` + card + `,"items":[{"sku":"mug","quantity":1}]}`,
		`{"customer_email":"ada@example.com\u0000",` + card + `,"items":[{"sku":"mug","quantity":1}]}`,
		`{"customer_email":"ada@example.com",` + card + `,"items":[{"sku":"mug\u0000","quantity":1}]}`,
		`{"customer_email":"ada@example.com",` + card + `,"items":[{"sku":"\ud800","quantity":1}]}`,
		"{\"customer_email\":\"ada@example.com\"," + card + ",\"items\":[{\"sku\":\"mug\xff\",\"quantity\":1}]}",
		`{"customer_email":"ada@example.com",` + card + `,"items":[{"sku":"` + strings.Repeat("s", 65) + `","quantity":1}]}`,
		`{"customer_email":"ada@example.com",` + card + `,"items":[{"sku":"mug","quantity":0}]}`,
		`{"customer_email":"ada@example.com",` + card + `,"items":[{"sku":"mug","quantity":-1}]}`,
		`{"customer_email":"ada@example.com",` + card + `,"items":[{"sku":"mug","quantity":1001}]}`,
		`{"customer_email":"ada@example.com",` + card + `,"items":[{"sku":"mug","quantity":9223372036854775808}]}`,
		`{"customer_email":"ada@example.com",` + card + `,"items":[{"sku":"mug","quantity":1e3}]}`,
		`{"customer_email":"ada@example.com",` + card + `,"items":[{"sku":"mug","quantity":1},{"sku":"mug","quantity":1}]}`,
		`{"customer_email":"ada@example.com",` + card + `,"items":[]}`,
		`{"customer_email":"ada@example.com",` + card + `,"items":[` + strings.Repeat(`{"sku":"mug","quantity":1},`, 50) + `{"sku":"cup","quantity":1}]}`,
		`{"customer_email":"ada@example.com","card_number":"4242-4242-4242-4242","items":[{"sku":"mug","quantity":1}]}`,
		`{"customer_email":"ada@example.com","card_number":"  42 42 42 42 42 42  ","items":[{"sku":"mug","quantity":1}]}`,
		`{"customer_email":"ada@example.com","card_number":"٤٢٤٢٤٢٤٢٤٢٤٢٤٢٤٢","items":[{"sku":"mug","quantity":1}]}`,
		`{"customer_email":"ada@example.com",` + card + `,"items":[{"sku":"mug","quantity":1}],"coupon":"x"}`,
		`{"customer_email":"ada@example.com",` + card + `,"items":[{"sku":"mug","sku":"poster","quantity":1}]}`,
		`{"customer_email":"x' OR '1'='1@example.com",` + card + `,"items":[{"sku":"'; DROP TABLE orders; --","quantity":1}]}`,
		`null`,
		`{"customer_email":"ada@example.com","CUSTOMER_EMAIL":"eve@example.com",` + card + `,"items":[{"sku":"mug","quantity":1}]}`,
		`{"customer_email":"ada@example.com",` + card + `,"items":[{"sku":"mug","quantity":1,"\u017fku":"poster"}]}`,
		`{"customer_email":"ada@example.com",` + card + `,"Items":[{"sku":"mug","quantity":1}]}`,
		`{"customer_email":"ada@example.com",` + card + `,"items":[{"sku":"\udbff","quantity":1},{"sku":"\udfff","quantity":1}]}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		n, err := decodeOrder(body)
		if err != nil {
			if !errors.Is(err, orders.ErrInvalid) && !isDecodeError(err) {
				t.Fatalf("refused with %v, want ErrInvalid or a decoding error", err)
			}
			return
		}
		// No parser differential: encoding/json (case-insensitive names,
		// the last of duplicates, U+FFFD for bad text) reads the same order.
		var lenient orders.NewOrder
		if err := json.Unmarshal(body, &lenient); err != nil || !reflect.DeepEqual(lenient, n) {
			t.Fatalf("accepted %q as %+v; encoding/json reads %+v, %v", body, n, lenient, err)
		}
		digits := strings.ReplaceAll(n.CardNumber, " ", "")
		addr, aerr := mail.ParseAddress(n.CustomerEmail)
		switch {
		case len(n.CustomerEmail) > orders.MaxEmail || !utf8.ValidString(n.CustomerEmail) || strings.ContainsRune(n.CustomerEmail, 0):
			t.Fatalf("accepted email %q, which orders.customer_email cannot hold", n.CustomerEmail)
		case aerr != nil || addr.Address != n.CustomerEmail:
			t.Fatalf("accepted email %q, which is not a bare address: %v", n.CustomerEmail, aerr)
		case len(digits) < 12 || len(digits) > 19 || strings.Trim(digits, "0123456789") != "":
			t.Fatalf("accepted card number %q", n.CardNumber)
		case len(n.Items) == 0 || len(n.Items) > orders.MaxItems:
			t.Fatalf("accepted %d items", len(n.Items))
		}
		skus := map[string]bool{}
		for _, it := range n.Items {
			switch {
			case it.SKU == "" || len(it.SKU) > orders.MaxSKU || !utf8.ValidString(it.SKU) || strings.ContainsRune(it.SKU, 0):
				t.Fatalf("accepted SKU %q, which cannot be looked up", it.SKU)
			case skus[it.SKU]:
				t.Fatalf("accepted SKU %q twice", it.SKU)
			case it.Quantity < 1 || it.Quantity > orders.MaxQuantity:
				t.Fatalf("accepted quantity %d, which order_items refuses", it.Quantity)
			}
			skus[it.SKU] = true
		}
		b, _ := json.Marshal(n)
		if again, err := decodeOrder(b); err != nil || !reflect.DeepEqual(again, n) {
			t.Fatalf("round trip of %+v: %+v, %v", n, again, err)
		}
	})
}
