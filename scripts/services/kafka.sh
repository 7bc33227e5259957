#!/usr/bin/env bash
# Apache Kafka for the test suite: one KRaft node (broker + controller) built from Maven Central
# artifacts and run on Java 17+. PLAINTEXT on 127.0.0.1:29092, controller on 127.0.0.1:29093
# (MESHGATE_KAFKA_PORT / MESHGATE_KAFKA_CONTROLLER_PORT override), replication factors 1,
# topic auto-creation on. Also installs `kcat` when missing (MESHGATE_SKIP_KCAT=1 to skip).
#
# usage: kafka.sh start|stop|status|restart   (start prints the bootstrap servers on stdout)
# env:   MESHGATE_KAFKA_VERSION (default 4.4.0; 3.9.x also supported),
#        MESHGATE_KAFKA_HEAP (default 512m), MESHGATE_KAFKA_JAVA_OPTS (extra JVM flags), JAVA.
set -euo pipefail
SERVICE_NAME=kafka
# shellcheck source=scripts/services/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

KAFKA_VERSION="${MESHGATE_KAFKA_VERSION:-4.4.0}"
KAFKA_HEAP="${MESHGATE_KAFKA_HEAP:-512m}"
JAVA_BIN="${JAVA:-java}"
KAFKA_START_TIMEOUT=120

KAFKA_STATE_DIR="$SERVICES_DIR/kafka"
KAFKA_DATA="$KAFKA_STATE_DIR/data"
KAFKA_CONFIG="$KAFKA_STATE_DIR/server.properties"
KAFKA_PIDFILE="$KAFKA_STATE_DIR/kafka.pid"
KAFKA_LOG="$KAFKA_STATE_DIR/kafka.log"
KAFKA_PID_MARKER="kafka.Kafka $KAFKA_CONFIG"

# Downloads are cached outside the state dir: Maven repo + resolved classpath per version.
MAVEN_REPO="${MESHGATE_MAVEN_REPO:-$SERVICES_CACHE_DIR/m2}"
KAFKA_DIST_DIR="$SERVICES_CACHE_DIR/kafka-$KAFKA_VERSION"
CLASSPATH_FILE="$KAFKA_DIST_DIR/classpath.txt"
CLASSPATH_ARGFILE="$KAFKA_DIST_DIR/classpath.args"

is_kafka3() { [[ "$KAFKA_VERSION" == 3.* ]]; }

# Kafka 4.x logs through Log4j2 (core already comes with kafka-server; add the SLF4J 2 bridge);
# 3.x logs through reload4j, which kafka_2.13 only compiles against.
logging_dependencies() {
  if is_kafka3; then
    cat <<'XML'
    <dependency><groupId>org.slf4j</groupId><artifactId>slf4j-reload4j</artifactId><version>1.7.36</version></dependency>
    <dependency><groupId>ch.qos.reload4j</groupId><artifactId>reload4j</artifactId><version>1.2.25</version></dependency>
XML
  else
    cat <<'XML'
    <dependency><groupId>org.apache.logging.log4j</groupId><artifactId>log4j-slf4j2-impl</artifactId><version>2.25.5</version></dependency>
    <dependency><groupId>org.slf4j</groupId><artifactId>slf4j-api</artifactId><version>2.0.17</version></dependency>
XML
  fi
}

write_pom() {
  cat >"$KAFKA_DIST_DIR/pom.xml" <<POM
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>local.meshgate</groupId>
  <artifactId>kafka-runtime</artifactId>
  <version>1</version>
  <packaging>pom</packaging>
  <dependencies>
    <dependency><groupId>org.apache.kafka</groupId><artifactId>kafka_2.13</artifactId><version>$KAFKA_VERSION</version></dependency>
$(logging_dependencies)
  </dependencies>
</project>
POM
}

classpath_complete() {
  [[ -s "$CLASSPATH_FILE" && -s "$CLASSPATH_ARGFILE" ]] || return 1
  local jar
  while IFS= read -r jar; do
    [[ -f "$jar" ]] || return 1
  done < <(tr ':' '\n' <"$CLASSPATH_FILE")
}

resolve_classpath() {
  classpath_complete && return 0
  command -v mvn >/dev/null || apt_install maven
  mkdir -p "$KAFKA_DIST_DIR" "$MAVEN_REPO" "$KAFKA_STATE_DIR"
  write_pom
  log "resolving org.apache.kafka:kafka_2.13:$KAFKA_VERSION with Maven (repo: $MAVEN_REPO)"
  local maven_log="$KAFKA_STATE_DIR/maven.log"
  if ! mvn -B -q -f "$KAFKA_DIST_DIR/pom.xml" "-Dmaven.repo.local=$MAVEN_REPO" \
      dependency:build-classpath "-Dmdep.outputFile=$CLASSPATH_FILE.tmp" -Dmdep.includeScope=runtime \
      >"$maven_log" 2>&1; then
    fail_with_log "$maven_log" "Maven could not resolve Kafka $KAFKA_VERSION"
  fi
  mv -f "$CLASSPATH_FILE.tmp" "$CLASSPATH_FILE"
  printf -- '-cp "%s"\n' "$(cat "$CLASSPATH_FILE")" >"$CLASSPATH_ARGFILE"
  classpath_complete || die "classpath $CLASSPATH_FILE lists missing jars"
}

check_java() {
  command -v "$JAVA_BIN" >/dev/null || die "java not found (Kafka $KAFKA_VERSION needs Java 17+)"
  local major
  major="$("$JAVA_BIN" -XshowSettings:properties -version 2>&1 |
    sed -n 's/^ *java.specification.version = //p' | cut -d. -f1)"
  if ! is_kafka3 && [[ "${major:-0}" -lt 17 ]]; then
    die "Kafka $KAFKA_VERSION needs Java 17+, $JAVA_BIN is Java ${major:-unknown}"
  fi
}

write_logging_configs() {
  if is_kafka3; then
    printf '%s\n' 'log4j.rootLogger=INFO, stdout' \
      'log4j.appender.stdout=org.apache.log4j.ConsoleAppender' \
      'log4j.appender.stdout.layout=org.apache.log4j.PatternLayout' \
      'log4j.appender.stdout.layout.ConversionPattern=[%d] %p %m (%c)%n' >"$KAFKA_STATE_DIR/log4j-server.properties"
    printf '%s\n' 'log4j.rootLogger=WARN, stderr' \
      'log4j.appender.stderr=org.apache.log4j.ConsoleAppender' \
      'log4j.appender.stderr.Target=System.err' \
      'log4j.appender.stderr.layout=org.apache.log4j.PatternLayout' \
      'log4j.appender.stderr.layout.ConversionPattern=[%d] %p %m (%c)%n' >"$KAFKA_STATE_DIR/log4j-tools.properties"
  else
    local level target file
    for spec in "INFO SYSTEM_OUT server" "WARN SYSTEM_ERR tools"; do
      read -r level target file <<<"$spec"
      printf '%s\n' 'status = warn' \
        'appender.console.type = Console' \
        'appender.console.name = CONSOLE' \
        "appender.console.target = $target" \
        'appender.console.layout.type = PatternLayout' \
        'appender.console.layout.pattern = [%d] %p %m (%c)%n' \
        "rootLogger.level = $level" \
        'rootLogger.appenderRef.console.ref = CONSOLE' >"$KAFKA_STATE_DIR/log4j-$file.properties"
    done
  fi
}

java_opts_for() {
  local which="$1" config="$KAFKA_STATE_DIR/log4j-$1.properties"
  # C1-only JIT: much less CPU during startup on small CI machines; tests need no peak throughput
  # (append -XX:TieredStopAtLevel=4 to MESHGATE_KAFKA_JAVA_OPTS to get C2 back).
  JAVA_OPTS=("-Xmx$KAFKA_HEAP" -XX:TieredStopAtLevel=1 -XX:+UseG1GC -XX:MaxGCPauseMillis=20
    -Djava.awt.headless=true "-Dkafka.logs.dir=$KAFKA_STATE_DIR")
  if is_kafka3; then
    JAVA_OPTS+=("-Dlog4j.configuration=file:$config")
  else
    JAVA_OPTS+=("-Dlog4j2.configurationFile=$config")
  fi
  if [[ "$which" == tools ]]; then
    JAVA_OPTS=(-Xmx256m "${JAVA_OPTS[@]:1}")
  fi
  if [[ -n "${MESHGATE_KAFKA_JAVA_OPTS:-}" ]]; then
    read -r -a extra <<<"$MESHGATE_KAFKA_JAVA_OPTS"
    JAVA_OPTS+=("${extra[@]}")
  fi
}

write_server_config() {
  cat >"$KAFKA_CONFIG" <<PROPS
# Generated by scripts/services/kafka.sh on every start; edits are overwritten.
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@$SERVICES_HOST:$KAFKA_CONTROLLER_PORT
listeners=PLAINTEXT://$SERVICES_HOST:$KAFKA_PORT,CONTROLLER://$SERVICES_HOST:$KAFKA_CONTROLLER_PORT
advertised.listeners=PLAINTEXT://$SERVICES_HOST:$KAFKA_PORT
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
log.dirs=$KAFKA_DATA
num.partitions=1
default.replication.factor=1
min.insync.replicas=1
offsets.topic.replication.factor=1
offsets.topic.num.partitions=3
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
transaction.state.log.num.partitions=3
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
auto.create.topics.enable=true
delete.topic.enable=true
PROPS
}

format_storage() {
  [[ -s "$KAFKA_DATA/meta.properties" ]] && return 0
  java_opts_for tools
  local cluster_id format_log="$KAFKA_STATE_DIR/format.log"
  if [[ ! -s "$KAFKA_STATE_DIR/cluster.id" ]]; then
    "$JAVA_BIN" "${JAVA_OPTS[@]}" "@$CLASSPATH_ARGFILE" kafka.tools.StorageTool random-uuid \
      >"$KAFKA_STATE_DIR/cluster.id" 2>"$format_log" ||
      fail_with_log "$format_log" "kafka-storage random-uuid failed"
  fi
  cluster_id="$(tr -d '[:space:]' <"$KAFKA_STATE_DIR/cluster.id")"
  log "formatting $KAFKA_DATA (cluster id $cluster_id)"
  if ! "$JAVA_BIN" "${JAVA_OPTS[@]}" "@$CLASSPATH_ARGFILE" kafka.tools.StorageTool format \
      -t "$cluster_id" -c "$KAFKA_CONFIG" --ignore-formatted >>"$format_log" 2>&1; then
    fail_with_log "$format_log" "kafka-storage format failed"
  fi
}

# A real Metadata request when kcat is there; otherwise the port plus the startup log line.
broker_answers() {
  port_open "$SERVICES_HOST" "$KAFKA_PORT" || return 1
  if command -v kcat >/dev/null; then
    timeout 10 kcat -L -b "$KAFKA_BOOTSTRAP" -m 5 -q >/dev/null 2>&1 || return 1
  fi
  return 0
}

ensure_kcat() {
  [[ "${MESHGATE_SKIP_KCAT:-0}" == 1 ]] && return 0
  (ensure_binary kcat kcat) || log "kcat could not be installed; continuing without it"
}

launch() {
  java_opts_for server
  [[ -s "$KAFKA_LOG" ]] && mv -f "$KAFKA_LOG" "$KAFKA_LOG.1"
  log "starting Kafka $KAFKA_VERSION on $KAFKA_BOOTSTRAP (controller :$KAFKA_CONTROLLER_PORT, log: $KAFKA_LOG)"
  # setsid: the broker must outlive the shell (and process group) that started it.
  setsid "$JAVA_BIN" "${JAVA_OPTS[@]}" "@$CLASSPATH_ARGFILE" kafka.Kafka "$KAFKA_CONFIG" \
    </dev/null >>"$KAFKA_LOG" 2>&1 &
  local pid=$!
  echo "$pid" >"$KAFKA_PIDFILE"
  local deadline=$((SECONDS + KAFKA_START_TIMEOUT))
  until grep -q "Kafka Server started" "$KAFKA_LOG" 2>/dev/null && broker_answers; do
    if ! kill -0 "$pid" 2>/dev/null; then
      rm -f "$KAFKA_PIDFILE"
      fail_with_log "$KAFKA_LOG" "Kafka exited during startup"
    fi
    if ((SECONDS >= deadline)); then
      show_log_tail "$KAFKA_LOG"
      stop_pid "$KAFKA_PIDFILE" "$KAFKA_PID_MARKER" 30
      die "Kafka did not become ready within ${KAFKA_START_TIMEOUT}s (stopped it; log above)"
    fi
    sleep 0.3
  done
  pid_matches "$pid" "$KAFKA_PID_MARKER" || die "pid $pid does not look like our broker"
  log "ready (pid $pid)"
}

svc_start() {
  local pid
  if pid="$(live_pid "$KAFKA_PIDFILE" "$KAFKA_PID_MARKER")"; then
    if broker_answers; then
      log "already running (pid $pid) on $KAFKA_BOOTSTRAP"
      echo "$KAFKA_BOOTSTRAP"
      return 0
    fi
    log "pid $pid is alive but the broker does not answer; restarting it"
    stop_pid "$KAFKA_PIDFILE" "$KAFKA_PID_MARKER" 60
  fi
  ensure_kcat
  check_java
  require_free_port "$KAFKA_PORT" kafka
  require_free_port "$KAFKA_CONTROLLER_PORT" "kafka controller"
  mkdir -p "$KAFKA_STATE_DIR" "$KAFKA_DATA"
  resolve_classpath
  write_logging_configs
  write_server_config
  format_storage
  launch
  echo "$KAFKA_BOOTSTRAP"
}

svc_stop() {
  stop_pid "$KAFKA_PIDFILE" "$KAFKA_PID_MARKER" 60
}

svc_status() {
  local pid
  if pid="$(live_pid "$KAFKA_PIDFILE" "$KAFKA_PID_MARKER" 2>/dev/null)"; then
    if broker_answers; then
      echo "kafka: running (pid $pid) $KAFKA_BOOTSTRAP (Kafka $KAFKA_VERSION)"
      return 0
    fi
    echo "kafka: running (pid $pid) but not answering on $KAFKA_BOOTSTRAP"
    return 1
  fi
  echo "kafka: stopped"
  return 3
}

dispatch "$@"
