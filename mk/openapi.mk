# The API's OpenAPI 3.1 document (services/api/internal/openapi/openapi.json,
# served at GET /v1/openapi.json; docs/api.md). Included by the top Makefile
# (-include mk/*.mk).
#
# Redocly CLI lints it: pinned in scripts/openapi/package-lock.json and
# installed there by npm ci on first use (node and npm come from Debian).
# The 1.x line because it runs on Debian 12's Node.js 18; the 2.x line
# needs Node.js 20.19 or later.

OPENAPI_DOC     := services/api/internal/openapi/openapi.json
OPENAPI_NPM     := scripts/openapi
OPENAPI_REDOCLY := $(OPENAPI_NPM)/node_modules/.bin/redocly
OPENAPI_CLIENT  := services/api/internal/openapi/genclient

.PHONY: openapi-lint openapi-generate openapi-check openapi-docs

# npm ci writes node_modules/.package-lock.json: reinstall when the lock
# file is newer. Install scripts are not run: the linter needs none.
$(OPENAPI_NPM)/node_modules/.package-lock.json: $(OPENAPI_NPM)/package-lock.json
	@command -v npm >/dev/null || { echo 'npm not found: apt-get install nodejs npm'; exit 1; }
	npm ci --prefix $(OPENAPI_NPM) --ignore-scripts --no-audit --no-fund --loglevel=error

openapi-lint: $(OPENAPI_NPM)/node_modules/.package-lock.json ## lint the OpenAPI document with Redocly CLI (recommended-strict: warnings fail)
	$(OPENAPI_REDOCLY) lint --config $(OPENAPI_NPM)/redocly.yaml $(OPENAPI_DOC)

openapi-generate: ## rewrite the document's stock kind schemas from the Go types, then the oapi-codegen client
	$(GO) test -count=1 -run TestStockKindSchemas ./services/api/internal/openapi -update
	$(GO) generate ./$(OPENAPI_CLIENT)

openapi-check: openapi-lint ## lint the document; fail if the generated client is not what the document gives
	$(GO) generate ./$(OPENAPI_CLIENT)
	@test -z "$$(git status --porcelain -- $(OPENAPI_CLIENT))" || { git status --short -- $(OPENAPI_CLIENT); \
		echo '$(OPENAPI_CLIENT) is stale: run make openapi-generate and commit it'; exit 1; }

openapi-docs: $(OPENAPI_NPM)/node_modules/.package-lock.json ## render the document as one HTML page, .dev/api.html (Redoc)
	$(OPENAPI_REDOCLY) build-docs $(OPENAPI_DOC) --output .dev/api.html
