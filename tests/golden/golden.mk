# tests/golden/ — data-driven scenario cases in the libvirt style.
#
#   make golden                      run every case of tests/golden/cases.txt
#   make golden-regenerate           rewrite expected outputs on purpose
#   make golden CYRANGE="valgrind -q --error-exitcode=99 build/cyrange"
#                                    the same cases under a wrapper
#
# GOLDEN_RUN is the command, so that other targets (valgrind, asan) can run
# the corpus with their own binary by setting CYRANGE.

CYRANGE ?= $(BUILD)/cyrange
GOLDEN_RUN = CYRANGE='$(CYRANGE)' ./tests/golden/run-golden.sh

.PHONY: golden golden-regenerate

golden: $(BUILD)/cyrange
	$(GOLDEN_RUN)

golden-regenerate: $(BUILD)/cyrange
	GOLDEN_REGENERATE=1 $(GOLDEN_RUN)
