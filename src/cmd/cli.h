/*
 * cli: the command line. Parses `pollen COMMAND [options]`, loads and
 * validates the configuration, and hands over to the engine (run), the
 * checker (check), the event-log reader (tail), the catalog listing
 * (catalog), the dead-letter store (dlq) and the outbox (outbox list), the
 * OAuth login and credential
 * status (auth) or the purge of removed triggers' state (purge).
 *
 * Exit codes: 0 ok, 1 runtime failure, 2 usage or configuration error.
 */
#ifndef POLLEN_CLI_H
#define POLLEN_CLI_H

enum {
    CLI_EXIT_OK = 0,
    CLI_EXIT_RUNTIME = 1,
    CLI_EXIT_USAGE = 2,
};

int cli_main(int argc, char **argv);

#endif
