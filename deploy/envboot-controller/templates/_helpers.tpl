{{- define "envboot-controller.name" -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "envboot-controller.labels" -}}
app.kubernetes.io/name: envboot-controller
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{- define "envboot-controller.selector" -}}
app.kubernetes.io/name: envboot-controller
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}
