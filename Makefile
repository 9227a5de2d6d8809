# The front door. `make run` serves the API locally; `make test` runs every
# test. Both install what they need on a fresh machine and say so.
.PHONY: run test bench mutants lint fmt build sam-build validate deploy clean ops routes

# One DynamoDB Local for the whole test run; each test makes its own tables.
test:
	bash scripts/test.sh

run:
	bash scripts/run-local.sh

# The operator tool against `make run`'s DynamoDB Local (its tables and
# port); in AWS run `cargo run -p chat-ops -- ...` with the stack's table
# names and your own credentials. E.g. make ops ARGS="audit alice".
# Quiet (@): the tool's own output only, not make's echo of this line.
ops:
	@AWS_ENDPOINT_URL=$${AWS_ENDPOINT_URL:-http://127.0.0.1:$${DYNAMODB_PORT:-8000}} \
	  AWS_REGION=$${AWS_REGION:-us-east-1} AWS_ACCESS_KEY_ID=local AWS_SECRET_ACCESS_KEY=local \
	  USERS_TABLE=users CREDENTIALS_TABLE=credentials CHATS_TABLE=chats \
	  cargo run --quiet -p chat-ops -- $(ARGS)

# Figures, not pass/fail: tables on stdout, JSON in target/bench/perf.json.
# PARTS="in-process cold-start" runs only those (see scripts/bench.sh).
bench:
	bash scripts/bench.sh $(PARTS)

# Mutation testing of the money code (cargo-mutants; hours for all of it):
# see scripts/mutants.sh. PASS=pure or PASS=flow runs one pass, FILES some
# files of it, TESTS some of the flow pass's test targets (TIMEOUT: seconds
# a mutant's tests may take, 300 unless given), e.g.
# make mutants PASS=flow FILES=shared/src/store/rate.rs TESTS=limits;
# ARGS go to cargo mutants (ARGS=--list: what would be tried).
mutants:
	bash scripts/mutants.sh $(ARGS)

# make run's router (in Cargo.toml), written from shared/src/routes.rs.
routes:
	cargo run --quiet -p devtools --bin routes

lint:
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets -- -D warnings
	# The functions as Lambda gets them (the default members): the shared
	# crate without the operator feature, so no function can call its code.
	cargo clippy -- -D warnings

fmt:
	cargo fmt --all

# Release arm64 binaries for Lambda, as target/lambda/<function>/bootstrap.
build:
	bash scripts/tools.sh cargo-lambda
	cargo lambda build --release --arm64

# cfn-lint, sam validate --lint, and checkov (a failed check, or a skip
# without a reason, fails it: scripts/checkov.sh).
validate:
	bash scripts/tools.sh sam
	cfn-lint template.yaml
	SAM_CLI_TELEMETRY=0 sam validate --lint --region us-east-1
	bash scripts/checkov.sh

# Release arm64 bootstraps in .aws-sam/build, checked, ready for `sam deploy`.
sam-build: validate
	bash scripts/sam-build.sh

deploy: sam-build
	sam deploy --guided

clean:
	cargo clean
	rm -rf .aws-sam
