# The two commands: `make run` and `make test`. Both install what is missing first.
BUILD      ?= build
TEST_BUILD ?= build-test
FUZZ_BUILD ?= build-fuzz
# make fuzz: seconds per target (each target runs on one core; JOBS targets at a time).
FUZZ_SECONDS ?= 3600
JOBS       ?= 2
DATA_DIR   ?= ./data

.PHONY: all deps build run test fuzz fuzz-build bench clean format install

all: build

deps:
	@./scripts/install-deps.sh

build: deps
	@cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=Release >/dev/null
	@cmake --build $(BUILD) -j$(JOBS)

run: build
	@$(BUILD)/volguard init --data-dir $(DATA_DIR)
	@$(BUILD)/volguard server --config $(DATA_DIR)/volguard.yaml

# Tests build with ASan + UBSan and run every suite (unit, CLI, interop, integration).
test: deps
	@cmake -S . -B $(TEST_BUILD) -DCMAKE_BUILD_TYPE=Debug -DVOLGUARD_SANITIZE=ON -DVOLGUARD_CRASH_POINTS=ON >/dev/null
	@cmake --build $(TEST_BUILD) -j$(JOBS)
	@$(MAKE) --no-print-directory fuzz-build FUZZ_SECONDS=15
	@cd $(TEST_BUILD) && ctest --output-on-failure --timeout 600 -j$(JOBS)
	@cd $(FUZZ_BUILD) && ctest --output-on-failure -j$(JOBS)

# The libFuzzer targets (tests/fuzz), a clang build of their own. `make fuzz` runs each for
# FUZZ_SECONDS from the checked-in seeds plus what earlier runs found (build-fuzz/fuzz-corpus);
# a crash leaves its input in build-fuzz/fuzz-artifacts.
fuzz-build: deps
	@CC=clang-14 CXX=clang++-14 cmake -S . -B $(FUZZ_BUILD) -DCMAKE_BUILD_TYPE=Debug -DVOLGUARD_FUZZ=ON \
	  -DVOLGUARD_BENCH=OFF -DFUZZ_SECONDS=$(FUZZ_SECONDS) >/dev/null
	@cmake --build $(FUZZ_BUILD) -j$(JOBS) --target fuzz_all

fuzz: fuzz-build
	@cd $(FUZZ_BUILD) && ctest --output-on-failure -j$(JOBS) --timeout $$(( $(FUZZ_SECONDS) + 600 ))

# Every tool runs and prints its rows even when an earlier one missed a target; the exit code
# says whether all of them met theirs.
bench: build
	@rc=0; \
	taskset -c 0 $(BUILD)/bench/volguard_bench_verify --benchmark_min_time=2 || rc=1; \
	$(BUILD)/bench/volguard_bench_load 8 8 || rc=1; \
	$(BUILD)/bench/volguard_bench_cluster 8 4 || rc=1; \
	bash bench/encryption_bench.sh $(BUILD)/volguard || rc=1; \
	exit $$rc

# Puts the binary on PATH (PREFIX=/usr/local by default; sudo when not root).
PREFIX ?= /usr/local
install: build
	@install -D -m 0755 $(BUILD)/volguard $(DESTDIR)$(PREFIX)/bin/volguard
	@echo "installed $(DESTDIR)$(PREFIX)/bin/volguard"

format:
	@clang-format -i $$(git ls-files '*.cc' '*.h')

clean:
	rm -rf $(BUILD) $(TEST_BUILD) $(FUZZ_BUILD)
