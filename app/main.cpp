// flashsale: one binary, four subcommands (SPEC §3). main() only parses the
// command line and wires; the work is in the Run* functions.

#include <CLI/CLI.hpp>

#include <cstdio>

#include "commands.hpp"
#include "config.hpp"

int main(int argc, char** argv) {
  using namespace flashsale::app;
  LoadDotEnv();
  Config config;
  CLI::App app{"flashsale: a high-concurrency flash-sale (秒杀) backend"};
  app.set_version_flag("--version", FLASHSALE_VERSION);
  app.require_subcommand(1);

  CLI::App* serve = app.add_subcommand("serve", "run the API server (embedded by default)");
  AddServeOptions(*serve, config);

  CLI::App* consume = app.add_subcommand("consume", "run the order consumer (distributed mode)");
  AddBackendOptions(*consume, config);
  AddConsumeOptions(*consume, config);
  AddLogOptions(*consume, config);

  std::string seed_file;
  bool force = false;
  CLI::App* seed = app.add_subcommand("seed", "load the mock catalog or a catalog file");
  seed->add_option("file", seed_file, "JSON array or CSV catalog (default: the mock catalog)");
  seed->add_flag("--force", force, "overwrite existing products");
  seed->add_option("--mock-seed", config.mock_seed, "random seed of the mock catalog")
      ->envname("FLASHSALE_MOCK_SEED");
  seed->add_option("--mock-products", config.mock_products, "how many mock products")
      ->check(CLI::Range(std::int64_t{1}, std::int64_t{10'000'000}));
  AddBackendOptions(*seed, config);

  bool repair = false;
  CLI::App* audit = app.add_subcommand("audit", "check the sale's invariants; exit 1 if broken");
  audit->add_flag("--repair", repair, "return units of orders that never reached the queue");
  AddBackendOptions(*audit, config);
  audit
      ->add_option("--grace-seconds", config.repair_grace_s,
                   "--repair leaves reservations younger than this alone")
      ->check(CLI::Range(std::int64_t{0}, std::int64_t{86'400 * 7}))
      ->capture_default_str();
  audit->add_option("--group", config.consumer_group, "the order consumer's Kafka group")
      ->envname("FLASHSALE_CONSUMER_GROUP")
      ->capture_default_str();

  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForVersion& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    std::fprintf(stderr, "flashsale: %s\n", e.what());
    return 2;
  }

  if (*serve) {
    SetUpLogging(config.log);
    return RunServe(config);
  }
  if (*consume) {
    SetUpLogging(config.log);
    return RunConsume(config);
  }
  if (*seed) return RunSeed(config, seed_file, force);
  if (*audit) return RunAudit(config, repair);
  return 2;
}
