// [server] ops_listen and [server.tls]. Every problem names the key and its line.

#include "core/config_reader.hpp"
#include "core/tls_files.hpp"

namespace sluice::config_detail {

void read_server_tls(const Reader& reader, const toml::table& server,
                     const std::filesystem::path& base_dir, ServerConfig& out) {
  if (const auto* ops = reader.optional<TomlString>(server, "server", "ops_listen")) {
    const std::string_view problem = listen_problem(ops->get());
    if (!problem.empty()) {
      reader.fail(*ops, "server.ops_listen",
                  "expected HOST:PORT, got " + quote_text(ops->get()) + ": " + std::string(problem));
    }
    out.ops_listen = ops->get();
  }
  const auto* tls = reader.optional<toml::table>(server, "server", "tls");
  if (tls == nullptr) return;
  reader.check_keys(*tls, "server.tls", {"certificate", "key"});
  const auto& certificate = reader.required<TomlString>(*tls, "server.tls", "certificate");
  const auto& key = reader.required<TomlString>(*tls, "server.tls", "key");
  TlsConfig config;
  config.certificate = (base_dir / certificate.get()).lexically_normal();
  config.key = (base_dir / key.get()).lexically_normal();
  if (auto problem = check_tls_files(config.certificate, config.key)) {
    if (problem->in_key) reader.fail(key, "server.tls.key", problem->message);
    reader.fail(certificate, "server.tls.certificate", problem->message);
  }
  out.tls = std::move(config);
}

}  // namespace sluice::config_detail
