/** The manager's built-in templates render to valid objects. */

import assert from "node:assert/strict";
import { parse } from "yaml";
import {
  DEFAULT_TEMPLATES,
  renderTemplate,
  type TemplateData,
} from "../../controllers/manager/deployment_runner.ts";

const data: TemplateData = {
  BindingName: "worker-1",
  ClusterID: "w1",
  Namespace: "kubeocean-system",
  Image: "ghcr.io/kubeocean/kubeocean:0.1.0",
  ServiceAccountName: "kubeocean-syncer",
  ProxierServiceAccountName: "kubeocean-proxier",
  SyncerName: "kubeocean-syncer-w1",
  ProxierName: "kubeocean-proxier-w1",
  KubeconfigHash: "0123456789abcdef",
  SecretName: "worker-1-kubeconfig",
  SecretNamespace: "kubeocean-system",
  TrustKubeconfigSecrets: "false",
};

Deno.test("every built-in template renders to one object with the binding's labels", () => {
  for (const [key, template] of Object.entries(DEFAULT_TEMPLATES)) {
    const object = parse(renderTemplate(template, data, key)) as {
      kind: string;
      metadata: { name: string; labels: Record<string, string> };
      spec?: {
        template?: { metadata?: { labels?: Record<string, string>; annotations?: Record<string, string> } };
      };
    };
    assert.ok(object.kind, key);
    assert.equal(object.metadata.labels["kubeocean.io/cluster-binding"], "worker-1", key);
    assert.equal(object.metadata.labels["app.kubernetes.io/managed-by"], "kubeocean-manager", key);
    if (object.kind === "Deployment") {
      assert.equal(object.spec!.template!.metadata!.labels!["app.kubernetes.io/instance"], "worker-1", key);
      assert.equal(
        object.spec!.template!.metadata!.annotations!["kubeocean.io/kubeconfig-hash"],
        "0123456789abcdef",
      );
    }
  }
});

Deno.test("an unknown template field is an error naming the template and the field", () => {
  assert.throws(
    () => renderTemplate("name: {{ .Nope }}", data, "custom.yaml"),
    /custom\.yaml: unknown field \.Nope/,
  );
});
