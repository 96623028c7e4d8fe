{{/*
Names, labels and the per-track Deployment. Object names and labels are the contract in
gitops/README.md: the overlays, this chart and the pipeline all rely on them.
*/}}

{{/* The service's name: every object's name starts with it. */}}
{{- define "inferops.name" -}}
inferops-service
{{- end }}

{{/* The namespace of every object. */}}
{{- define "inferops.namespace" -}}
{{- .Values.namespace | default .Release.Namespace }}
{{- end }}

{{/* Labels that select the service's pods (both tracks). */}}
{{- define "inferops.selectorLabels" -}}
app.kubernetes.io/name: {{ include "inferops.name" . }}
{{- end }}

{{/* The contract's common labels, on every object and pod. */}}
{{- define "inferops.commonLabels" -}}
{{ include "inferops.selectorLabels" . }}
app.kubernetes.io/part-of: inferops
{{- end }}

{{/* Object labels: the common ones plus Helm's bookkeeping. */}}
{{- define "inferops.labels" -}}
{{ include "inferops.commonLabels" . }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{/*
A track's image tag: the canary's falls back to the stable's. Called with
(dict "root" $ "track" "stable"|"canary").
*/}}
{{- define "inferops.tag" -}}
{{- $tag := .root.Values.image.tag -}}
{{- if eq .track "canary" }}{{ $tag = .root.Values.canary.image.tag | default $tag }}{{ end -}}
{{- toString $tag -}}
{{- end }}

{{/*
A track's image reference: "repository:tag", or "repository@sha256:..." when the tag is a
digest. The canary's repository and tag fall back to the stable's.
*/}}
{{- define "inferops.image" -}}
{{- $repo := .root.Values.image.repository -}}
{{- if eq .track "canary" }}{{ $repo = .root.Values.canary.image.repository | default $repo }}{{ end -}}
{{- $tag := include "inferops.tag" . -}}
{{- printf "%s%s%s" $repo (ternary "@" ":" (hasPrefix "sha256:" $tag)) $tag -}}
{{- end }}

{{/*
A track's inferops.io/version pod label: its `version` value, else its image tag without
any digest, made a valid label value.
*/}}
{{- define "inferops.version" -}}
{{- $version := (index .root.Values .track).version | default (include "inferops.tag" .) -}}
{{- $version = toString $version | splitList "@" | first | replace ":" "-" -}}
{{- $version | trunc 63 | trimSuffix "-" | trimSuffix "." | trimSuffix "_" -}}
{{- end }}

{{/* The Deployment of one track; called with (dict "root" $ "track" "stable"|"canary"). */}}
{{- define "inferops.deployment" -}}
{{- $root := .root -}}
{{- $track := .track -}}
{{- $values := index $root.Values $track -}}
{{- $v := $root.Values -}}
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {{ include "inferops.name" $root }}-{{ $track }}
  namespace: {{ include "inferops.namespace" $root }}
  labels:
    {{- include "inferops.labels" $root | nindent 4 }}
    inferops.io/track: {{ $track }}
  {{- with $v.deploymentAnnotations }}
  annotations:
    {{- toYaml . | nindent 4 }}
  {{- end }}
spec:
  replicas: {{ $values.replicas }}
  revisionHistoryLimit: {{ $v.revisionHistoryLimit }}
  selector:
    matchLabels:
      {{- include "inferops.selectorLabels" $root | nindent 6 }}
      inferops.io/track: {{ $track }}
  {{- with $v.strategy }}
  strategy:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  template:
    metadata:
      labels:
        {{- include "inferops.commonLabels" $root | nindent 8 }}
        inferops.io/track: {{ $track }}
        inferops.io/version: {{ include "inferops.version" . | quote }}
      annotations:
        kubectl.kubernetes.io/default-container: service
    spec:
      serviceAccountName: {{ include "inferops.name" $root }}
      # The service calls no Kubernetes API; IRSA and Workload Identity need no token here.
      automountServiceAccountToken: false
      enableServiceLinks: false
      terminationGracePeriodSeconds: {{ $v.termination.gracePeriodSeconds }}
      securityContext:
        runAsNonRoot: true
        runAsUser: {{ $v.securityContext.runAsUser }}
        runAsGroup: {{ $v.securityContext.runAsGroup }}
        fsGroup: {{ $v.securityContext.fsGroup }}
        seccompProfile:
          type: RuntimeDefault
      {{- with $v.gpu.nodeSelector }}
      nodeSelector:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with $v.gpu.tolerations }}
      tolerations:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      containers:
        - name: service
          image: {{ include "inferops.image" . }}
          imagePullPolicy: {{ $v.image.pullPolicy }}
          # The image's entrypoint is `inferops-service serve --host 0.0.0.0`.
          args:
            - --port
            - "8000"
            - --metrics-port
            - "9090"
            - --config
            - /etc/inferops/service.yaml
            - --drain-seconds
            - {{ $v.termination.drainSeconds | quote }}
            - --graceful-timeout
            - {{ $v.termination.gracefulTimeoutSeconds | quote }}
          ports:
            - name: http
              containerPort: 8000
              protocol: TCP
            - name: metrics
              containerPort: 9090
              protocol: TCP
          env:
            # The track and version the pod serves, echoed on every response (x-inferops-track,
            # x-inferops-version): the load generator's samples, which the canary judge
            # compares, are split by them.
            - name: INFEROPS_IDENTITY_TRACK
              valueFrom:
                fieldRef:
                  fieldPath: metadata.labels['inferops.io/track']
            - name: INFEROPS_IDENTITY_VERSION
              valueFrom:
                fieldRef:
                  fieldPath: metadata.labels['inferops.io/version']
            {{- with $values.env }}
            {{- toYaml . | nindent 12 }}
            {{- end }}
          resources:
            requests:
              {{- with $v.resources.requests }}
              {{- toYaml . | nindent 14 }}
              {{- end }}
              {{- if $v.gpu.count }}
              nvidia.com/gpu: {{ $v.gpu.count }}
              {{- end }}
            limits:
              {{- with $v.resources.limits }}
              {{- toYaml . | nindent 14 }}
              {{- end }}
              {{- if $v.gpu.count }}
              nvidia.com/gpu: {{ $v.gpu.count }}
              {{- end }}
          securityContext:
            allowPrivilegeEscalation: false
            privileged: false
            readOnlyRootFilesystem: true
            runAsNonRoot: true
            runAsUser: {{ $v.securityContext.runAsUser }}
            runAsGroup: {{ $v.securityContext.runAsGroup }}
            capabilities:
              drop:
                - ALL
            seccompProfile:
              type: RuntimeDefault
          startupProbe:
            httpGet:
              path: /health
              port: http
            {{- toYaml $v.probes.startup | nindent 12 }}
          livenessProbe:
            httpGet:
              path: /health
              port: http
            {{- toYaml $v.probes.liveness | nindent 12 }}
          readinessProbe:
            httpGet:
              path: /ready
              port: http
            {{- toYaml $v.probes.readiness | nindent 12 }}
          lifecycle:
            preStop:
              sleep:
                seconds: {{ $v.termination.preStopSleepSeconds }}
          volumeMounts:
            - name: config
              mountPath: /etc/inferops
              readOnly: true
            - name: tmp
              mountPath: /tmp
      volumes:
        - name: config
          configMap:
            name: {{ include "inferops.name" $root }}-config
        - name: tmp
          emptyDir:
            {{- with $v.tmpSizeLimit }}
            sizeLimit: {{ . }}
            {{- end }}
{{- end }}

{{/* The Service of one track; called with (dict "root" $ "track" "stable"|"canary"). */}}
{{- define "inferops.service" -}}
{{- $root := .root -}}
apiVersion: v1
kind: Service
metadata:
  name: {{ include "inferops.name" $root }}-{{ .track }}
  namespace: {{ include "inferops.namespace" $root }}
  labels:
    {{- include "inferops.labels" $root | nindent 4 }}
    inferops.io/track: {{ .track }}
spec:
  type: ClusterIP
  selector:
    {{- include "inferops.selectorLabels" $root | nindent 4 }}
    inferops.io/track: {{ .track }}
  ports:
    - name: http
      port: 80
      targetPort: 8000
      protocol: TCP
    - name: metrics
      port: 9090
      targetPort: 9090
      protocol: TCP
{{- end }}
