# tests/fuzz/http.mk — libFuzzer on httpd's request path and websock frames.
#
#   make fuzz-http                 build, seed the corpus, fuzz FUZZ_TIME s
#   make fuzz-http FUZZ_TIME=600   longer
#   make fuzz-http-build           only build $(BUILD)/fuzz/fuzz_http
#
# Uses tests/fuzz/fuzz.mk's compiler, flags and instrumented core objects,
# so it must be included after it.  The corpus lives in
# $(BUILD)/fuzz/http-corpus and grows across runs; seeds (requests of every
# kind, a websocket session) and the dictionary are written by the rule
# below.  Crashes land in $(BUILD)/fuzz/crash-*; reproduce one with
#   $(BUILD)/fuzz/fuzz_http $(BUILD)/fuzz/crash-...

FUZZ_HTTP        := $(FUZZ_DIR)/fuzz_http
FUZZ_HTTP_CORPUS := $(FUZZ_DIR)/http-corpus

$(FUZZ_HTTP): tests/fuzz/fuzz_http.c $(FUZZ_OBJS)
	@mkdir -p $(@D)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer -MMD -MP -o $@ $< $(FUZZ_OBJS) \
	    $(LDFLAGS) $(LDLIBS)

-include $(FUZZ_HTTP).d

.PHONY: fuzz-http fuzz-http-build fuzz-http-seeds

fuzz-http-build: $(FUZZ_HTTP)

# Seeds and dictionary: octal escapes, as dash's printf has no \x.
fuzz-http-seeds:
	@mkdir -p $(FUZZ_HTTP_CORPUS)
	@c=$(FUZZ_HTTP_CORPUS); \
	printf 'GET /api/teams/blue/findings/42?q=a%%20b+c HTTP/1.1\r\nHost: x\r\nCookie: s=1\r\n\r\n' > $$c/seed-get; \
	printf 'POST /api/teams/red/findings HTTP/1.1\r\nContent-Length: 17\r\n\r\n{"a":[1,2,{"b":3}' > $$c/seed-post-bad; \
	printf 'POST /api/teams/red/findings HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n7\r\n{"a":1}\r\n0\r\n\r\n' > $$c/seed-chunked; \
	printf 'GET /later HTTP/1.1\r\n\r\nGET /api/teams/me/findings/1 HTTP/1.1\r\n\r\nHEAD /ui/app.js HTTP/1.0\r\nConnection: keep-alive\r\n\r\n' > $$c/seed-pipeline; \
	printf 'GET /ui/%%2e%%2e/secret.txt HTTP/1.1\r\n\r\nGET /ui/out HTTP/1.1\r\n\r\nGET /ui/sub HTTP/1.1\r\n\r\nGET /ui/ HTTP/1.1\r\nIf-None-Match: *\r\n\r\n' > $$c/seed-static; \
	printf 'GET /files/a.pcap HTTP/1.1\r\n\r\nPUT /api/report HTTP/1.1\r\nContent-Length: 300\r\nExpect: 100-continue\r\n\r\n' > $$c/seed-file; \
	printf 'GET /ws HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: chat\r\n\r\n\201\205\000\000\000\000hello\001\203\000\000\000\000Hel\211\201\000\000\000\000p\200\202\000\000\000\000lo\210\202\000\000\000\000\003\350' > $$c/seed-ws; \
	printf 'kw1="HTTP/1.1"\nkw2="HTTP/1.0"\nkw3="\\x0d\\x0a"\nkw4="Content-Length: "\nkw5="Transfer-Encoding: chunked"\nkw6="Connection: close"\nkw7="Connection: Upgrade"\nkw8="Upgrade: websocket"\nkw9="Sec-WebSocket-Version: 13"\nkw10="Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ=="\nkw11="%%2e%%2e"\nkw12="/api/teams/"\nkw13="/findings/"\nkw14="/ui/"\nkw15="/ws"\nkw16="/later"\nkw17="POST "\nkw18="GET "\nkw19="HEAD "\nkw20="Expect: 100-continue"\nkw21="If-None-Match: "\nkw22="If-Modified-Since: "\nkw23="\\x81\\x85\\x00\\x00\\x00\\x00"\nkw24="\\x88\\x82"\nkw25="/files/"\nkw26="{\\"a\\":"\n' > $(FUZZ_DIR)/http.dict

fuzz-http: $(FUZZ_HTTP) fuzz-http-seeds
	cd $(FUZZ_DIR) && ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 \
	    ./fuzz_http -max_total_time=$(FUZZ_TIME) -timeout=10 -rss_limit_mb=2048 \
	    -max_len=16384 -dict=http.dict \
	    $(if $(filter-out 1,$(FUZZ_JOBS)),-jobs=$(FUZZ_JOBS) -workers=$(FUZZ_JOBS)) \
	    -print_final_stats=1 \
	    $(FUZZ_ARGS) http-corpus
