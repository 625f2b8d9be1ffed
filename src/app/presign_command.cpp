#include <chrono>
#include <iostream>
#include <stdexcept>

#include "app/commands.hpp"
#include "features/files/presigned_link.hpp"
#include "http/content_disposition.hpp"
#include "storage/object_key.hpp"
#include "storage/open_object_store.hpp"

namespace sluice {

int presign_command(const PresignOptions& options) {
  const LinkLifetime lifetime = parse_link_lifetime(options.expires);
  if (!lifetime.error.empty()) throw std::invalid_argument("--expires: " + lifetime.error);
  if (const std::optional<std::string> problem = key_problem(options.key)) {
    throw std::invalid_argument("the object key " + *problem);
  }
  if (is_reserved_key(options.key)) {
    throw std::invalid_argument("invalid object key: keys under " +
                                std::string(kReservedKeyPrefix) + " belong to Sluice");
  }
  const Config config = load_config(options.config_file);
  if (!config.storage) {
    throw std::invalid_argument(config.file.string() +
                                ": no [storage] section: there are no stored objects to link to");
  }
  if (config.storage->kind == "s3") {
    // S3 serves the object itself: a URL presigned with the store's credentials.
    std::unique_ptr<ObjectStore> store = open_object_store(*config.storage);
    const std::string name = options.key.substr(options.key.rfind('/') + 1);
    std::cout
        << store->presign_get(options.key, lifetime.seconds, content_disposition(name)).value()
        << '\n';
    return 0;
  }
  const std::string& variable = config.storage->link_secret_env;
  const LinkSecrets secrets = link_secrets_from_env(variable);
  if (!secrets.current) {
    throw std::invalid_argument("environment variable " + variable +
                                " (storage.link_secret_env) is not set: it holds the secret that "
                                "signs links, and the server needs the same value");
  }
  const std::int64_t now = std::chrono::duration_cast<std::chrono::seconds>(
                               std::chrono::system_clock::now().time_since_epoch())
                               .count();
  std::string base = options.base_url.value_or("http://" + config.server.listen);
  while (!base.empty() && base.back() == '/') base.pop_back();
  std::cout << base << presigned_path(*secrets.current, options.key, now + lifetime.seconds.count())
            << '\n';
  return 0;
}

}  // namespace sluice
