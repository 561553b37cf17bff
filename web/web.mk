# web/ — the UI's third-party browser modules (xterm.js and its fit addon),
# pinned in web/package.json and web/package-lock.json, installed with
# `npm ci` and copied into web/vendor/ (gitignored), which the orchestrator
# serves at /vendor/.  Include from the top Makefile: `include web/web.mk`.

WEB_VENDOR := web/vendor/xterm
WEB_NPM    := web/node_modules/@xterm

.PHONY: web-deps web-check e2e e2e-deps

web-deps: $(WEB_VENDOR)/.stamp

$(WEB_VENDOR)/.stamp: web/package.json web/package-lock.json
	npm ci --prefix web --ignore-scripts --no-audit --no-fund
	mkdir -p $(WEB_VENDOR)
	cp $(WEB_NPM)/xterm/lib/xterm.mjs $(WEB_NPM)/xterm/css/xterm.css $(WEB_VENDOR)/
	cp $(WEB_NPM)/xterm/LICENSE $(WEB_VENDOR)/LICENSE.xterm
	cp $(WEB_NPM)/addon-fit/lib/addon-fit.mjs $(WEB_VENDOR)/
	touch $@

# Every i18n key used is in both catalogues and every catalogue key is used.
web-check:
	node web/tools/check-i18n.mjs web

# End-to-end tests in a real browser (Debian's chromium, no download)
# against a running `cyrange serve`: BASE_URL, E2E_MEMBER1, E2E_MEMBER2,
# E2E_INSTRUCTOR (name:password) come from the environment.
e2e-deps: web-deps tests/e2e/node_modules/.stamp

tests/e2e/node_modules/.stamp: tests/e2e/package.json tests/e2e/package-lock.json
	npm ci --prefix tests/e2e --ignore-scripts --no-audit --no-fund
	touch $@

e2e: e2e-deps
	node tests/e2e/ui.spec.mjs
