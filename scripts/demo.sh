#!/usr/bin/env bash
# make demo: places orders against a running `make run` (or SPOOL_API_URL),
# 5% with a card the simulated provider declines, waits until each is
# fulfilled or failed, and prints the outcome table from /v1/orders/stats.
# The numbers reconcile: one charge, one email, one invoice per fulfilled order.
# shellcheck disable=SC2016 # the single-quoted strings are jq programs
set -euo pipefail
api=${SPOOL_API_URL:-http://127.0.0.1:8080}
n=${DEMO_ORDERS:-200}
auth=()
[[ -n ${SPOOL_API_TOKEN:-} ]] && auth=(-H "Authorization: Bearer $SPOOL_API_TOKEN")

command -v jq >/dev/null || { echo "make demo needs jq (apt-get install jq)" >&2; exit 1; }
if ! curl -sf "${auth[@]}" "$api/v1/products" >/dev/null; then
	echo "no Spool API answers at $api: start it with 'make run' in another terminal" >&2
	exit 1
fi
stats() { curl -sf "${auth[@]}" "$api/v1/orders/stats"; }
before=$(stats)

place() { # $1: order number
	local auth=() card=4242424242424242
	[[ -n ${SPOOL_API_TOKEN:-} ]] && auth=(-H "Authorization: Bearer $SPOOL_API_TOKEN")
	(($1 % 20 == 0)) && card=4000000000000002
	local body
	body=$(printf '{"customer_email":"customer%d@example.com","card_number":"%s","items":[{"sku":"mug","quantity":%d},{"sku":"stickers","quantity":1}]}' \
		"$1" "$card" $((1 + $1 % 3)))
	for _ in $(seq 100); do
		code=$(curl -s -o /dev/null -w '%{http_code}' "${auth[@]}" -H 'Content-Type: application/json' -d "$body" "$api/v1/orders")
		case $code in
		201) return 0 ;;
		429 | 503) sleep 0.2 ;;
		*) echo "order $1: HTTP $code" >&2; return 1 ;;
		esac
	done
	return 1
}
export -f place
export api

echo "placing $n orders at $api (every 20th card is declined) ..."
start=$(date +%s)
seq 1 "$n" | xargs -P 16 -I{} bash -c 'place {}'
echo "placed in $(($(date +%s) - start))s; waiting for every pipeline to finish ..."

delta() { jq -n "${@:3}" --argjson a "$before" --argjson b "$1" "$2"; }
for _ in $(seq 600); do
	now=$(stats)
	left=$(delta "$now" '$b.orders.processing - $a.orders.processing')
	[[ $left -le 0 ]] && break
	sleep 1
done

now=$(stats)
delta "$now" '
  def d(f): ($b | f) - ($a | f);
  [ ["orders placed", (d(.orders.fulfilled) + d(.orders.failed) + d(.orders.processing))],
    ["fulfilled", d(.orders.fulfilled)],
    ["failed", d(.orders.failed)],
    ["  of which declined cards", d(.declined_charges)],
    ["still processing", d(.orders.processing)],
    ["charges captured (kept)", d(.charges)],
    ["refunds", d(.refunds)],
    ["confirmation emails sent", d(.confirmation_emails)],
    ["invoices", d(.invoices)],
    ["inventory syncs", d(.inventory_syncs)],
    ["step retries (failed attempts)", d(.retries)] ]
  | .[] | "\(.[0] | . + (" " * (32 - length)))\(.[1])"' -r
ok=$(delta "$now" '
  def d(f): ($b | f) - ($a | f);
  d(.orders.processing) == 0 and d(.charges) == d(.orders.fulfilled)
  and d(.confirmation_emails) == d(.orders.fulfilled) and d(.invoices) == d(.orders.fulfilled)')
if [[ $ok == true ]]; then
	echo "reconciled: one charge, one confirmation email and one invoice per fulfilled order"
else
	echo "NOT reconciled (see the table above)" >&2
	exit 1
fi
