{{/* Names */}}
{{- define "switchyard.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "switchyard.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{/* A component's resource name: (dict "root" $ "component" "router") */}}
{{- define "switchyard.componentName" -}}
{{- printf "%s-%s" (include "switchyard.fullname" .root) .component | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "switchyard.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "switchyard.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* Labels: (dict "root" $ "component" "router") */}}
{{- define "switchyard.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .root.Chart.Name .root.Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "switchyard.selectorLabels" . }}
app.kubernetes.io/version: {{ .root.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
app.kubernetes.io/part-of: switchyard
{{- with .root.Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{- define "switchyard.selectorLabels" -}}
app.kubernetes.io/name: {{ include "switchyard.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
{{- if .component }}
app.kubernetes.io/component: {{ .component }}
{{- end }}
{{- end }}

{{- /* The Switchyard image. No image is published, so the operator names the one they built and pushed. */}}
{{- define "switchyard.image" -}}
{{- $repository := required "image.repository is not set: no Switchyard image is published; build one from the repository's Dockerfile (make image), push it to a registry the cluster can pull from and set image.repository (e.g. --set image.repository=registry.example.com/switchyard; helm/switchyard/README.md)" .Values.image.repository -}}
{{- $tag := default .Chart.AppVersion .Values.image.tag -}}
{{- if .Values.image.digest -}}
{{ $repository }}@{{ .Values.image.digest }}
{{- else -}}
{{ $repository }}:{{ $tag }}
{{- end -}}
{{- end }}

{{/*
TOML of a configuration dict: top-level keys are sections ([kafka], [delivery], ...); a map value inside a
section is an inline table (librdkafka option maps); lists and scalars are written as JSON, which is valid
TOML for strings, numbers, booleans and arrays of them. Null values are left out (the binary's default).
*/}}
{{- define "switchyard.toml" -}}
{{- range $section, $body := . }}
[{{ $section }}]
{{- range $key, $value := $body }}
{{- if and (kindIs "map" $value) (hasSuffix "options" $key) }}
{{ $key }} = { {{- $first := true }}{{ range $k, $v := $value }}{{ if not (kindIs "invalid" $v) }}{{ if not $first }}, {{ end }}{{ $first = false }}{{ $k | toJson }} = {{ $v | toString | toJson }}{{ end }}{{ end }} }
{{- else if and (not (kindIs "map" $value)) (not (kindIs "invalid" $value)) }}
{{ $key }} = {{ $value | toJson }}
{{- end }}
{{- end }}
{{- /* A map that is not librdkafka options (whose values are strings) is a sub-section, e.g. [console.proxy]. */}}
{{- range $key, $value := $body }}
{{- if and (kindIs "map" $value) (not (hasSuffix "options" $key)) }}

[{{ $section }}.{{ $key }}]
{{- range $k, $v := $value }}
{{- if not (kindIs "invalid" $v) }}
{{ $k }} = {{ $v | toJson }}
{{- end }}
{{- end }}
{{- end }}
{{- end }}
{{ end }}
{{- end }}

{{/* librdkafka option keys with "_" for "." (the binaries accept both; the environment needs "_"). */}}
{{- define "switchyard.optionKeys" -}}
{{- $out := dict }}
{{- range $k, $v := . }}
{{- $_ := set $out ($k | replace "." "_") $v }}
{{- end }}
{{- toJson $out }}
{{- end }}

{{/* Kafka options shared by every component: kafka.options, then security from kafka.sasl / kafka.tls. */}}
{{- define "switchyard.kafkaOptions" -}}
{{- $k := .Values.kafka }}
{{- $opts := include "switchyard.optionKeys" $k.options | fromJson }}
{{- if and $k.sasl.enabled $k.tls.enabled }}
{{- $_ := set $opts "security_protocol" "SASL_SSL" }}
{{- else if $k.sasl.enabled }}
{{- $_ := set $opts "security_protocol" "SASL_PLAINTEXT" }}
{{- else if $k.tls.enabled }}
{{- $_ := set $opts "security_protocol" "SSL" }}
{{- end }}
{{- if $k.sasl.enabled }}
{{- $_ := set $opts "sasl_mechanisms" $k.sasl.mechanism }}
{{- end }}
{{- if and $k.tls.enabled $k.tls.existingSecret }}
{{- $_ := set $opts "ssl_ca_location" (printf "/etc/switchyard/kafka-tls/%s" $k.tls.caKey) }}
{{- if $k.tls.certKey }}
{{- $_ := set $opts "ssl_certificate_location" (printf "/etc/switchyard/kafka-tls/%s" $k.tls.certKey) }}
{{- $_ := set $opts "ssl_key_location" (printf "/etc/switchyard/kafka-tls/%s" $k.tls.keyKey) }}
{{- end }}
{{- end }}
{{- toJson $opts }}
{{- end }}

{{/* Name of the Secret with the Kafka SASL credentials. */}}
{{- define "switchyard.kafkaSecretName" -}}
{{- default (include "switchyard.componentName" (dict "root" . "component" "kafka")) .Values.kafka.sasl.existingSecret }}
{{- end }}

{{/* SASL credentials as environment variables: (dict "root" $ "prefix" "SWITCHYARD_ROUTER") */}}
{{- define "switchyard.kafkaEnv" -}}
{{- $k := .root.Values.kafka }}
{{- if $k.sasl.enabled }}
- name: {{ .prefix }}__KAFKA__OPTIONS__SASL_USERNAME
  valueFrom:
    secretKeyRef:
      name: {{ include "switchyard.kafkaSecretName" .root }}
      key: {{ $k.sasl.usernameKey }}
- name: {{ .prefix }}__KAFKA__OPTIONS__SASL_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ include "switchyard.kafkaSecretName" .root }}
      key: {{ $k.sasl.passwordKey }}
{{- end }}
{{- end }}

{{/* Volumes every Switchyard pod has: its config, /tmp, the Kafka TLS material. (dict "root" $ "config" name) */}}
{{- define "switchyard.volumes" -}}
- name: config
  configMap:
    name: {{ .config }}
- name: tmp
  emptyDir:
    sizeLimit: 64Mi
{{- $tls := .root.Values.kafka.tls }}
{{- if and $tls.enabled $tls.existingSecret }}
- name: kafka-tls
  secret:
    secretName: {{ $tls.existingSecret }}
    defaultMode: 0440
{{- end }}
{{- end }}

{{- define "switchyard.volumeMounts" -}}
- name: config
  mountPath: /etc/switchyard/config
  readOnly: true
- name: tmp
  mountPath: /tmp
{{- $tls := .Values.kafka.tls }}
{{- if and $tls.enabled $tls.existingSecret }}
- name: kafka-tls
  mountPath: /etc/switchyard/kafka-tls
  readOnly: true
{{- end }}
{{- end }}

{{/* Topology spread: the given constraints, or zones and nodes with ScheduleAnyway. (dict "root" $ "component" c "constraints" list) */}}
{{- define "switchyard.topologySpread" -}}
{{- if .constraints }}
{{- toYaml .constraints }}
{{- else }}
{{- range $key := list "topology.kubernetes.io/zone" "kubernetes.io/hostname" }}
- maxSkew: 1
  topologyKey: {{ $key }}
  whenUnsatisfiable: ScheduleAnyway
  labelSelector:
    matchLabels:
      {{- include "switchyard.selectorLabels" (dict "root" $.root "component" $.component) | nindent 6 }}
{{- end }}
{{- end }}
{{- end }}

{{/* Seconds, rounded up, of a millisecond value. */}}
{{- define "switchyard.ceilSeconds" -}}
{{- div (add (int64 .) 999) 1000 }}
{{- end }}

{{/* The registry's URL as plugin workers reach it. */}}
{{- define "switchyard.registryUrl" -}}
{{- printf "http://%s.%s.svc.%s:%v" (include "switchyard.componentName" (dict "root" . "component" "registry")) .Release.Namespace .Values.clusterDomain .Values.registry.service.port }}
{{- end }}

{{/* Topic names as the router's [topics] section. */}}
{{- define "switchyard.router.config" -}}
{{- $t := .Values.kafka.topics }}
{{- $c := deepCopy .Values.router.config }}
{{- $kafka := default dict $c.kafka }}
{{- $managed := dict
  "kafka" (dict
    "bootstrap_servers" .Values.kafka.bootstrapServers
    "options" (include "switchyard.kafkaOptions" . | fromJson)
    "consumer_options" (include "switchyard.optionKeys" (default dict $kafka.consumer_options) | fromJson)
    "producer_options" (include "switchyard.optionKeys" (default dict $kafka.producer_options) | fromJson))
  "topics" (dict
    "core_events" $t.coreEvents
    "plugins" $t.plugins
    "enablements" $t.enablements
    "dead_letter" $t.deadLetter
    "plugin_events_template" $t.pluginEventsTemplate
    "backfill_progress" $t.backfillProgress)
  "admin" (dict "listen" (printf "0.0.0.0:%v" .Values.router.adminPort)) }}
{{- $_ := set $c "kafka" (dict) }}
{{- toJson (mergeOverwrite $c $managed) }}
{{- end }}

{{- define "switchyard.registry.config" -}}
{{- $t := .Values.kafka.topics }}
{{- $c := deepCopy .Values.registry.config }}
{{- $managed := dict
  "kafka" (dict
    "bootstrap_servers" .Values.kafka.bootstrapServers
    "options" (include "switchyard.kafkaOptions" . | fromJson))
  "topics" (dict
    "plugins" $t.plugins
    "enablements" $t.enablements
    "configs" $t.configs
    "instances" $t.instances
    "backfills" $t.backfills
    "backfill_progress" $t.backfillProgress
    "console_sign_ins" $t.consoleSignIns
    "plugin_registrations" $t.pluginRegistrations
    "dead_letter_replays" $t.deadLetterReplays
    "core_events" $t.coreEvents
    "plugin_events_template" $t.pluginEventsTemplate
    "plugin_dead_letter_template" $t.pluginDeadLetterTemplate)
  "http" (dict "listen" (printf "0.0.0.0:%v" .Values.registry.port)) }}
{{- toJson (mergeOverwrite $c $managed) }}
{{- end }}

{{/* A plugin entry merged over pluginDefaults: (dict "root" $ "plugin" entry) -> JSON */}}
{{- define "switchyard.plugin.merged" -}}
{{- $p := mergeOverwrite (deepCopy .root.Values.pluginDefaults) (deepCopy .plugin) }}
{{- if not $p.id }}
{{- fail "plugins: every entry needs an id" }}
{{- end }}
{{- if not (regexMatch "^[a-z0-9]([a-z0-9-]{0,38}[a-z0-9])?$" $p.id) }}
{{- fail (printf "plugins: id %q must be lowercase letters, digits and '-' (at most 40 characters)" $p.id) }}
{{- end }}
{{- $mode := default "bridge" $p.mode }}
{{- $_ := set $p "mode" $mode }}
{{- if and (eq $mode "bridge") (not $p.url) }}
{{- fail (printf "plugins[%s]: mode bridge needs url (the plugin service's base URL)" $p.id) }}
{{- end }}
{{- if and (eq $mode "image") (not $p.command) (not $p.args) }}
{{- fail (printf "plugins[%s]: mode image needs command and/or args" $p.id) }}
{{- end }}
{{- if not (has $mode (list "bridge" "image")) }}
{{- fail (printf "plugins[%s]: mode must be bridge or image, not %q" $p.id $mode) }}
{{- end }}
{{- if and (not $p.token) (not $p.existingSecret) }}
{{- fail (printf "plugins[%s]: set token or existingSecret (a registry token with role plugin: switchyardctl token mint --role plugin --plugin %s)" $p.id $p.id) }}
{{- end }}
{{- if and $p.autoscaling.enabled (gt (int $p.autoscaling.maxReplicas) (int $p.partitions)) }}
{{- fail (printf "plugins[%s]: autoscaling.maxReplicas (%v) must be at most partitions (%v): extra consumers would sit idle" $p.id $p.autoscaling.maxReplicas $p.partitions) }}
{{- end }}
{{- if and (not $p.autoscaling.enabled) (gt (int $p.replicaCount) (int $p.partitions)) }}
{{- fail (printf "plugins[%s]: replicaCount (%v) must be at most partitions (%v)" $p.id $p.replicaCount $p.partitions) }}
{{- end }}
{{- toJson $p }}
{{- end }}

{{- define "switchyard.plugin.config" -}}
{{- $root := .root }}
{{- $p := .plugin }}
{{- $t := $root.Values.kafka.topics }}
{{- $c := deepCopy (default dict $p.config) }}
{{- $admin := dict "listen" (printf "0.0.0.0:%v" $p.adminPort) }}
{{- if and $p.service $p.service.enabled }}
{{- $_ := set $admin "public_url" (printf "http://%s.%s.svc.%s:%v" (include "switchyard.componentName" (dict "root" $root "component" (printf "plugin-%s" $p.id))) $root.Release.Namespace $root.Values.clusterDomain (default $p.adminPort $p.service.port)) }}
{{- end }}
{{- $managed := dict
  "kafka" (dict
    "bootstrap_servers" $root.Values.kafka.bootstrapServers
    "options" (include "switchyard.kafkaOptions" $root | fromJson))
  "topics" (dict
    "events_template" $t.pluginEventsTemplate
    "dead_letter_template" $t.pluginDeadLetterTemplate
    "configs" $t.configs
    "results" $t.pluginResults)
  "registry" (dict "url" (include "switchyard.registryUrl" $root))
  "admin" $admin }}
{{- $c = mergeOverwrite $c $managed }}
{{- if eq $p.mode "bridge" }}
{{- $http := default dict $c.http }}
{{- $patterns := default list $http.url_patterns }}
{{- $u := urlParse $p.url }}
{{- $base := printf "%s://%s" $u.scheme $u.host }}
{{- if not (has $base $patterns) }}
{{- $patterns = append $patterns $base }}
{{- end }}
{{- $_ := set $http "url_patterns" $patterns }}
{{- $_ := set $c "http" $http }}
{{- end }}
{{- toJson $c }}
{{- end }}

{{/* Pod security context and container security context. */}}
{{- define "switchyard.podSecurityContext" -}}
{{- toYaml .Values.podSecurityContext }}
{{- end }}
{{- define "switchyard.containerSecurityContext" -}}
{{- toYaml .Values.containerSecurityContext }}
{{- end }}


{{/* Whether any KEDA object is rendered (router or a plugin). */}}
{{- define "switchyard.kedaUsed" -}}
{{- $used := and .Values.router.enabled .Values.router.autoscaling.enabled .Values.router.autoscaling.keda.enabled }}
{{- range $entry := .Values.plugins }}
{{- $p := include "switchyard.plugin.merged" (dict "root" $ "plugin" $entry) | fromJson }}
{{- if $p.autoscaling.enabled }}{{ $used = true }}{{ end }}
{{- end }}
{{- if $used }}
{{- if not (.Capabilities.APIVersions.Has "keda.sh/v1alpha1/ScaledObject") }}
{{- fail "KEDA autoscaling is enabled (router.autoscaling.keda.enabled or a plugin's autoscaling.enabled) but the cluster has no keda.sh/v1alpha1 ScaledObject API: install KEDA, pass --api-versions keda.sh/v1alpha1/ScaledObject, or disable it" }}
{{- end }}
{{- true }}
{{- end }}
{{- end }}

{{/* Whether the KEDA Kafka trigger needs a TriggerAuthentication (SASL, or TLS with a CA Secret). */}}
{{- define "switchyard.kedaAuth" -}}
{{- if or .Values.kafka.sasl.enabled (and .Values.kafka.tls.enabled .Values.kafka.tls.existingSecret) }}true{{ end }}
{{- end }}

{{/* KEDA Kafka trigger: (dict "root" $ "group" g "topic" t "lag" n "activation" n) */}}
{{- define "switchyard.kedaKafkaTrigger" -}}
{{- $k := .root.Values.kafka }}
- type: kafka
  metadata:
    bootstrapServers: {{ $k.bootstrapServers | quote }}
    consumerGroup: {{ .group | quote }}
    topic: {{ .topic | quote }}
    lagThreshold: {{ .lag | quote }}
    activationLagThreshold: {{ .activation | quote }}
    offsetResetPolicy: earliest
    # More consumers than partitions would sit idle.
    allowIdleConsumers: "false"
    {{- if $k.sasl.enabled }}
    {{- $mech := $k.sasl.mechanism | upper }}
    sasl: {{ if eq $mech "PLAIN" }}plaintext{{ else }}{{ $mech | lower | replace "-" "_" | replace "scram_sha_" "scram_sha" }}{{ end }}
    {{- end }}
    {{- if $k.tls.enabled }}
    tls: enable
    {{- end }}
  {{- if include "switchyard.kedaAuth" .root }}
  authenticationRef:
    name: {{ include "switchyard.componentName" (dict "root" .root "component" "kafka") }}
  {{- end }}
{{- end }}

{{/* The router's workload kind: a StatefulSet for static group membership, else a Deployment. */}}
{{- define "switchyard.router.kind" -}}
{{- if .Values.router.staticMembership }}StatefulSet{{ else }}Deployment{{ end }}
{{- end }}
