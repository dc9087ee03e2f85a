# The two commands: `make run` and `make test`. Both install what is missing first.
BUILD      ?= build
TEST_BUILD ?= build-test
JOBS       ?= 2
DATA_DIR   ?= ./data

.PHONY: all deps build run test bench clean format

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
	@cd $(TEST_BUILD) && ctest --output-on-failure --timeout 600

# Every tool runs and prints its rows even when an earlier one missed a target; the exit code
# says whether all of them met theirs.
bench: build
	@rc=0; \
	taskset -c 0 $(BUILD)/bench/volguard_bench_verify --benchmark_min_time=2 || rc=1; \
	$(BUILD)/bench/volguard_bench_load 8 8 || rc=1; \
	$(BUILD)/bench/volguard_bench_cluster 8 4 || rc=1; \
	bash bench/encryption_bench.sh $(BUILD)/volguard || rc=1; \
	exit $$rc

format:
	@clang-format -i $$(git ls-files '*.cc' '*.h')

clean:
	rm -rf $(BUILD) $(TEST_BUILD)
