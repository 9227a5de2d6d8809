# Sourced by the scripts for what more than one of them needs. The sourcing
# script sets `root` (the repository) and `say` (its own log prefix).

# Whether something listens on 127.0.0.1:PORT.
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# wait_for_port PORT WHAT PID: returns once PORT listens; fails, saying so,
# if process PID (the one that should listen) exits first or 60 s pass.
wait_for_port() {
  local port="$1" what="$2" pid="$3"
  for _ in $(seq 1 600); do
    port_open "$port" && return 0
    kill -0 "$pid" 2>/dev/null || { say "$what exited before it was ready"; return 1; }
    sleep 0.1
  done
  say "$what did not listen on 127.0.0.1:$port within 60 s"; return 1
}

# Every function crate: the folders under functions/, one Lambda each.
function_crates() {
  local dir
  for dir in "$root"/functions/*/; do basename "$dir"; done
}

# The local router of `make run` ([workspace.metadata.lambda.watch.router]
# in Cargo.toml), one "PATH FUNCTION" line per route.
router_routes() {
  sed -n '/^\[workspace\.metadata\.lambda\.watch\.router\]/,/^\[/p' "$root/Cargo.toml" |
    sed -n 's/^"\([^"]*\)" *= *"\([^"]*\)".*/\1 \2/p'
}

# The functions `make run` serves: those its router names.
served_functions() { router_routes | awk '{ print $2 }' | sort -u; }

# What `make run` builds and runs: the routed functions and the sweeper
# (run on a schedule, through watch's invoke API).
run_functions() { { served_functions; echo sweeper; } | sort -u; }
