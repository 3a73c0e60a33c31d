output "releases" {
  description = "Installed Helm releases: namespace/name -> chart version (the exporter and the Strimzi resources are local charts)."
  value = {
    for r in [helm_release.strimzi, helm_release.kafka, helm_release.kube_prometheus_stack, helm_release.opencost, helm_release.exporter] :
    "${r.namespace}/${r.name}" => r.metadata.version
  }
}

output "kafka_bootstrap" {
  description = "In-cluster bootstrap address of the Strimzi Kafka cluster (plain listener)."
  value       = "${local.kafka_cluster}-kafka-bootstrap.${local.strimzi.namespace}.svc:9092"
}

output "port_forward_commands" {
  description = "Reach Grafana, Prometheus, OpenCost and the exporter from your machine."
  value = [
    "kubectl -n ${local.kube_prometheus_stack.namespace} port-forward svc/${local.kube_prometheus_stack.release}-grafana 3000:80",
    "kubectl -n ${local.kube_prometheus_stack.namespace} port-forward svc/${local.kube_prometheus_stack.release}-prometheus 9090:9090",
    "kubectl -n ${local.opencost.namespace} port-forward svc/${local.opencost.release} 9091:9090",
    "kubectl -n ${local.exporter.namespace} port-forward svc/${local.exporter.release} 9400:9400",
  ]
}
