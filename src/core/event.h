/*
 * event.h: the change types an event can carry, as bits.
 *
 * Owns: nothing (constants only).
 * Invariants: one bit per change type; a set of them is an `unsigned`.
 *   The names as they appear in events and configuration ("created",
 *   "updated", "deleted", "touched") map to these bits one to one.
 *   "touched" is an update of the definition's update-time field alone
 *   (updated_field: the touch a write to a child record gives its parent);
 *   it is an event only where `emit` asks for it.
 * Thread context: any.
 */
#ifndef POLLEN_EVENT_H
#define POLLEN_EVENT_H

enum {
    EVENT_TYPE_CREATED = 1u << 0,
    EVENT_TYPE_UPDATED = 1u << 1,
    EVENT_TYPE_DELETED = 1u << 2,
    EVENT_TYPE_TOUCHED = 1u << 3,
};

#endif
