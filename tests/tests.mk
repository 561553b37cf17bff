# tests/ — how the suites are built and run.
#
#   unit         cmocka binaries listed in UNIT_TESTS (each module's .mk adds its own)
#   golden       data-driven scenario cases (tests/golden/cases.txt)
#   schema-check JSON Schema and FORMAT.md kept in step with the validator
#   integration  real libvirtd + real QEMU guests (tests/integration/*.sh)
#   check        all of the above, with one summary line at the end
#   asan         unit + golden under AddressSanitizer + UBSan
#   valgrind     unit + golden under valgrind
#   test         what README.md and .ci/run use: deps, build, images, check,
#                asan, valgrind

include tests/unit/unit.mk
include tests/golden/golden.mk
include tests/fuzz/fuzz.mk
include tests/fuzz/http.mk
include tests/schema/schema.mk
include bench/bench.mk
# Further modules bring their own fragments (tests/unit/<module>.mk,
# bench/<name>.mk).
include $(filter-out tests/unit/unit.mk,$(wildcard tests/unit/*.mk))
include $(filter-out bench/bench.mk,$(wildcard bench/*.mk))

SAN_FLAGS := -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all

.PHONY: unit-bins

unit-bins: $(UNIT_TESTS)

unit: unit-bins
	@./tests/run-tests.sh unit $(UNIT_TESTS)

check: all unit-bins images web-deps e2e-deps web-check
	@./tests/run-tests.sh all $(UNIT_TESTS)

integration: all images web-deps e2e-deps
	@./tests/run-tests.sh integration

# Sanitizer and valgrind runs build into their own folders so they never mix
# objects with the normal build.
asan:
	$(MAKE) --no-print-directory BUILD=$(BUILD)/asan OPT="-O1 -g $(SAN_FLAGS)" \
	    LDFLAGS="$(SAN_FLAGS)" $(BUILD)/asan/cyrange unit-bins
	@ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1 \
	    CYRANGE=$(BUILD)/asan/cyrange BUILD=$(BUILD)/asan \
	    ./tests/run-tests.sh unit-golden $(patsubst $(BUILD)/%,$(BUILD)/asan/%,$(UNIT_TESTS))

valgrind: all unit-bins
	@CYRANGE="valgrind -q --leak-check=full --errors-for-leak-kinds=definite,indirect --error-exitcode=99 $(BUILD)/cyrange" \
	    VALGRIND="valgrind -q --leak-check=full --errors-for-leak-kinds=definite,indirect --error-exitcode=99" \
	    ./tests/run-tests.sh unit-golden $(UNIT_TESTS)

test: deps
	$(MAKE) --no-print-directory all
	$(MAKE) --no-print-directory check
	$(MAKE) --no-print-directory asan
	$(MAKE) --no-print-directory valgrind
