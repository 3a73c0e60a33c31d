{{/* Chart name, cut to the 63 characters of a DNS label. */}}
{{- define "ai-finops-exporter.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Full name of the release's objects. */}}
{{- define "ai-finops-exporter.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "ai-finops-exporter.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Labels of every object but its component. */}}
{{- define "ai-finops-exporter.baseLabels" -}}
helm.sh/chart: {{ include "ai-finops-exporter.chart" . }}
app.kubernetes.io/name: {{ include "ai-finops-exporter.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: ai-finops
{{- end -}}

{{/* Labels of the exporter's objects. */}}
{{- define "ai-finops-exporter.labels" -}}
{{ include "ai-finops-exporter.baseLabels" . }}
app.kubernetes.io/component: exporter
{{- end -}}

{{- define "ai-finops-exporter.selectorLabels" -}}
app.kubernetes.io/name: {{ include "ai-finops-exporter.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: exporter
{{- end -}}

{{- define "ai-finops-exporter.producerSelectorLabels" -}}
app.kubernetes.io/name: {{ include "ai-finops-exporter.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: producer
{{- end -}}

{{- /* A producer's selector labels: (dict "root" $ "component" "producer-gpu"). */ -}}
{{- define "ai-finops-exporter.producerSelectorLabelsFor" -}}
app.kubernetes.io/name: {{ include "ai-finops-exporter.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "ai-finops-exporter.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "ai-finops-exporter.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "ai-finops-exporter.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}

{{/* Name of the Secret holding the Kafka properties file. */}}
{{- define "ai-finops-exporter.credentialsSecret" -}}
{{- default (printf "%s-kafka" (include "ai-finops-exporter.fullname" .)) .Values.kafkaCredentials.existingSecret -}}
{{- end -}}

{{/* Where the pods find their files. */}}
{{- define "ai-finops-exporter.configPath" -}}/etc/ai-finops/config.yaml{{- end -}}
{{- define "ai-finops-exporter.propertiesDir" -}}/etc/ai-finops/kafka{{- end -}}
{{- define "ai-finops-exporter.propertiesPath" -}}/etc/ai-finops/kafka/client.properties{{- end -}}
{{- define "ai-finops-exporter.caDir" -}}/etc/ai-finops/kafka-ca{{- end -}}

{{/* The Strimzi bootstrap address, or config.kafka.brokers when set. */}}
{{- define "ai-finops-exporter.brokers" -}}
{{- $kafka := .Values.config.kafka | default dict -}}
{{- if $kafka.brokers -}}
{{- $kafka.brokers -}}
{{- else -}}
{{- $ns := default .Release.Namespace .Values.kafkaCluster.namespace -}}
{{- printf "%s-kafka-bootstrap.%s.svc:%v" .Values.kafkaCluster.name $ns .Values.kafkaCluster.port -}}
{{- end -}}
{{- end -}}

{{/*
The daemon's configuration as rendered into the ConfigMap, as YAML:
.Values.config plus what the chart derives (brokers, the properties file,
the CA path, counters.new_series_hold_ms unless set). Everything else in the chart reads its settings from here, so
the pods, probes, Service and ServiceMonitor cannot disagree with it.
*/}}
{{- define "ai-finops-exporter.config" -}}
{{- $config := deepCopy (.Values.config | default dict) -}}
{{- $kafka := get $config "kafka" | default dict -}}
{{- $_ := set $kafka "brokers" (include "ai-finops-exporter.brokers" .) -}}
{{- if .Values.kafkaCredentials.enabled -}}
{{- $_ := set $kafka "properties_file" (include "ai-finops-exporter.propertiesPath" .) -}}
{{- end -}}
{{- if .Values.kafkaPassword.enabled -}}
{{- $props := get $kafka "properties" | default dict -}}
{{- $secret := required "kafkaPassword.secretName is required when kafkaPassword.enabled" .Values.kafkaPassword.secretName -}}
{{- $_ := set $props "sasl.username" (default $secret .Values.kafkaPassword.username) -}}
{{- $_ := set $props "sasl.password" "${env:KAFKA_SASL_PASSWORD}" -}}
{{- $_ := set $kafka "properties" $props -}}
{{- end -}}
{{- if .Values.kafkaTls.enabled -}}
{{- $props := get $kafka "properties" | default dict -}}
{{- $_ := set $props "ssl.ca.location" (printf "%s/%s" (include "ai-finops-exporter.caDir" .) .Values.kafkaTls.caKey) -}}
{{- $_ := set $kafka "properties" $props -}}
{{- end -}}
{{- $_ := set $config "kafka" $kafka -}}
{{- $counters := get $config "counters" | default dict -}}
{{- if not (hasKey $counters "new_series_hold_ms") -}}
{{- $_ := set $counters "new_series_hold_ms" (include "ai-finops-exporter.defaultHoldMs" . | int64) -}}
{{- end -}}
{{- $_ := set $config "counters" $counters -}}
{{- toYaml $config -}}
{{- end -}}

{{/* The TCP port of config.web.listen_address (":9400" -> 9400). */}}
{{- define "ai-finops-exporter.port" -}}
{{- $web := .Values.config.web | default dict -}}
{{- $addr := $web.listen_address | default ":9400" | toString -}}
{{- $port := regexFind "[0-9]+$" $addr -}}
{{- if not $port -}}
{{- fail (printf "config.web.listen_address %q has no port" $addr) -}}
{{- end -}}
{{- $port -}}
{{- end -}}

{{- define "ai-finops-exporter.telemetryPath" -}}
{{- $web := .Values.config.web | default dict -}}
{{- $web.telemetry_path | default "/metrics" -}}
{{- end -}}

{{/* serviceMonitor.interval in milliseconds ("15s" -> 15000; the schema allows whole seconds only). */}}
{{- define "ai-finops-exporter.scrapeIntervalMs" -}}
{{- mul (trimSuffix "s" .Values.serviceMonitor.interval | int64) 1000 -}}
{{- end -}}

{{/*
The default counters.new_series_hold_ms: a new series must read 0 in at
least one successful scrape, so the hold spans two scrape intervals (one
scrape may fail) plus 5 s for the scrape's own duration and jitter.
*/}}
{{- define "ai-finops-exporter.defaultHoldMs" -}}
{{- add (mul (include "ai-finops-exporter.scrapeIntervalMs" . | int64) 2) 5000 -}}
{{- end -}}

{{/* The daemon's final checkpoint on SIGTERM, bounded by kafka.shutdown_timeout_ms (daemon default 10000). */}}
{{- define "ai-finops-exporter.shutdownTimeoutMs" -}}
{{- $kafka := .Values.config.kafka | default dict -}}
{{- if hasKey $kafka "shutdown_timeout_ms" -}}{{ int64 $kafka.shutdown_timeout_ms }}{{- else -}}10000{{- end -}}
{{- end -}}

{{- define "ai-finops-exporter.terminationGracePeriodSeconds" -}}
{{- $timeoutMs := include "ai-finops-exporter.shutdownTimeoutMs" . | int64 -}}
{{- add (div (add $timeoutMs 999) 1000) .Values.terminationGrace.extraSeconds -}}
{{- end -}}

{{/*
Refuses configurations the daemon would accept but that break delivery in a
Deployment (called by the Deployment template).
*/}}
{{- define "ai-finops-exporter.guards" -}}
{{- $config := include "ai-finops-exporter.config" . | fromYaml -}}
{{- $kafka := $config.kafka | default dict -}}
{{- if $kafka.transactional_id -}}
{{- fail (printf "config.kafka.transactional_id (%q) would be shared by every pod of the Deployment, and pods sharing one fence each other's checkpoints; leave it unset: each pod then uses ai-finops-exporter-<pod name>" (toString $kafka.transactional_id)) -}}
{{- end -}}
{{- $web := $config.web | default dict -}}
{{- if hasKey $web "scraper_connections" -}}
{{- if not $web.scrapers -}}
{{- fail "config.web.scraper_connections reserves connections for config.web.scrapers, which is empty: list where Prometheus connects from (its pod CIDR, or the node CIDR) in config.web.scrapers, or remove scraper_connections" -}}
{{- end -}}
{{- $maxConn := (hasKey $web "max_connections") | ternary ($web.max_connections | int64) 1024 -}}
{{- if ge ($web.scraper_connections | int64) $maxConn -}}
{{- fail (printf "config.web.scraper_connections (%d) must be below config.web.max_connections (%d): the other clients need at least one connection" ($web.scraper_connections | int64) $maxConn) -}}
{{- end -}}
{{- end -}}
{{- $hold := $config.counters.new_series_hold_ms | int64 -}}
{{- $intervalMs := include "ai-finops-exporter.scrapeIntervalMs" . | int64 -}}
{{- if and .Values.serviceMonitor.enabled (gt $hold 0) (le $hold (mul $intervalMs 2)) -}}
{{- fail (printf "config.counters.new_series_hold_ms (%d) must be longer than twice serviceMonitor.interval (%s), or 0 for a Prometheus that ingests _created timestamps: a new series must read 0 in at least one scrape, else Prometheus never counts its first value" $hold .Values.serviceMonitor.interval) -}}
{{- end -}}
{{- end -}}

{{/*
The producer's -X flags: the librdkafka properties of the config (not
secrets; the credentials file is read by the producer's wrapper script).
librdkafka ignores consumer-only ones in a producer with a warning.
*/}}
{{- define "ai-finops-exporter.producerProperties" -}}
{{- $config := include "ai-finops-exporter.config" . | fromYaml -}}
{{- $props := $config.kafka.properties | default dict -}}
{{- range $k := keys $props | sortAlpha }}
- -X
- {{ printf "%s=%v" $k (get $props $k) | quote }}
{{- end -}}
{{- end -}}

{{/*
A probe's handler for path: HTTP, HTTPS under webConfig.tls, or a TCP
connect when webConfig.clientCertRequired (a kubelet has no client
certificate). Called with (list $ path).
*/}}
{{- define "ai-finops-exporter.probe" -}}
{{- $ := index . 0 -}}
{{- $path := index . 1 -}}
{{- if and $.Values.webConfig.enabled $.Values.webConfig.clientCertRequired -}}
tcpSocket:
  port: metrics
{{- else -}}
httpGet:
  path: {{ $path }}
  port: metrics
  {{- if and $.Values.webConfig.enabled $.Values.webConfig.tls }}
  scheme: HTTPS
  {{- end }}
{{- end -}}
{{- end -}}

{{/*
The environment variable that carries the SASL password from its Secret
(kafkaPassword); the ConfigMap holds only ${env:KAFKA_SASL_PASSWORD}.
*/}}
{{- define "ai-finops-exporter.passwordEnv" -}}
{{- if .Values.kafkaPassword.enabled }}
env:
  - name: KAFKA_SASL_PASSWORD
    valueFrom:
      secretKeyRef:
        name: {{ .Values.kafkaPassword.secretName | quote }}
        key: {{ .Values.kafkaPassword.secretKey | quote }}
{{- end }}
{{- end -}}
