import { RegistryType } from "@runbridge/contracts";

/** The host part of a registry URL as `docker login` takes it (scheme, port and path dropped). */
export function registryHost(registryUrl: string): string {
  const noScheme = registryUrl.trim().replace(/^https?:\/\//i, "");
  const hostPort = noScheme.split("/")[0] ?? "";
  return hostPort.replace(/:\d+$/, "").toLowerCase();
}

const DOCKER_HUB_HOSTS = new Set(["docker.io", "index.docker.io", "registry-1.docker.io", "registry.hub.docker.com", "hub.docker.com"]);

/**
 * Which registry a URL names, from its host:
 * ghcr.io → ghcr; Docker Hub hosts → dockerhub; *.dkr.ecr.<region>.amazonaws.com(.cn) and
 * public.ecr.aws → ecr; gcr.io and *.gcr.io → gcr; *-docker.pkg.dev → gar (Artifact Registry);
 * *.azurecr.io → acr; registry.gitlab.com and registry.gitlab.<domain> → gitlab; else generic.
 */
export function resolveRegistryType(registryUrl: string): RegistryType {
  const host = registryHost(registryUrl);
  if (host === "ghcr.io") return RegistryType.Ghcr;
  if (DOCKER_HUB_HOSTS.has(host)) return RegistryType.DockerHub;
  if (/^[0-9]{12}\.dkr\.ecr(-fips)?\.[a-z0-9-]+\.amazonaws\.com(\.cn)?$/.test(host) || host === "public.ecr.aws") return RegistryType.Ecr;
  if (host === "gcr.io" || host.endsWith(".gcr.io")) return RegistryType.Gcr;
  if (/^[a-z0-9-]+-docker\.pkg\.dev$/.test(host)) return RegistryType.Gar;
  if (/^[a-z0-9-]+\.azurecr\.(io|cn|us)$/.test(host)) return RegistryType.Acr;
  if (host === "registry.gitlab.com" || host.startsWith("registry.gitlab.")) return RegistryType.Gitlab;
  return RegistryType.Generic;
}
