/*
 * status_page: the one self-contained HTML page the engine's listener
 * serves at / (no external assets, no framework): it fetches /status.json
 * (the `pollen status --json` object, each trigger with its hourly events
 * and requests) and draws the triggers, locations, outbox and database, and
 * per trigger a bar chart of events and requests per hour over 24 hours.
 *
 * Owns: the page's text (static).
 * Invariants: the page renders nothing it did not get from /status.json;
 * every value is inserted as text (textContent), never as markup.
 * Thread context: any (constant data).
 */
#ifndef POLLEN_STATUS_PAGE_H
#define POLLEN_STATUS_PAGE_H

extern const char status_page_html[];

#endif
