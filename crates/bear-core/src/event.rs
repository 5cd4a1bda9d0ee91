//! Events published on BEAR's in-process event bus.
//!
//! Components announce state changes (a model loaded, a document ingested, a workflow step
//! finished) as [`Event`]s; the monitor agent, the server's progress streams and the CLI's
//! progress bars subscribe. Events carry ids, counts and timings only, never user text.

use serde::{Deserialize, Serialize};
use tokio::sync::broadcast;

use crate::id::{CollectionId, DocumentId, ModelId, PluginId, RunId, StepId};
use crate::workflow::{RunStatus, StepStatus};

/// One state change somewhere in BEAR.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
#[non_exhaustive]
pub enum Event {
    /// A model finished loading.
    ModelLoaded {
        /// Which model.
        model: ModelId,
        /// Load time in milliseconds.
        millis: u64,
    },
    /// A model was unloaded (explicitly, by LRU eviction or by keep-alive expiry).
    ModelUnloaded {
        /// Which model.
        model: ModelId,
    },
    /// A generation finished.
    GenerationFinished {
        /// Which model.
        model: ModelId,
        /// Tokens produced.
        completion_tokens: u32,
        /// Wall time in milliseconds.
        millis: u64,
    },
    /// A document was ingested into a collection.
    DocumentIngested {
        /// The collection.
        collection: CollectionId,
        /// The document.
        document: DocumentId,
        /// Chunks written.
        chunks: u32,
    },
    /// A workflow step changed status.
    StepChanged {
        /// The run.
        run: RunId,
        /// The step.
        step: StepId,
        /// Its new status.
        status: StepStatus,
    },
    /// A workflow run changed status.
    RunChanged {
        /// The run.
        run: RunId,
        /// Its new status.
        status: RunStatus,
    },
    /// A plugin was loaded or reloaded.
    PluginLoaded {
        /// Which plugin.
        plugin: PluginId,
    },
}

/// A multi-producer, multi-consumer bus for [`Event`]s.
///
/// Publishing never blocks and never fails: with no subscriber the event is dropped, and a
/// subscriber that falls more than `capacity` events behind skips the oldest ones (it learns how
/// many through `RecvError::Lagged`). Cloning the bus gives another handle to the same bus.
#[derive(Debug, Clone)]
pub struct EventBus {
    sender: broadcast::Sender<Event>,
}

impl EventBus {
    /// A bus that buffers up to `capacity` events per slow subscriber.
    pub fn new(capacity: usize) -> Self {
        let (sender, _) = broadcast::channel(capacity.max(1));
        Self { sender }
    }

    /// Publishes an event to every current subscriber.
    pub fn publish(&self, event: Event) {
        // An error only means "no subscriber right now", which is fine for a bus.
        let _ = self.sender.send(event);
    }

    /// A receiver of every event published from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.sender.subscribe()
    }
}

impl Default for EventBus {
    fn default() -> Self {
        Self::new(1024)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subscribers_see_events_in_order() {
        let bus = EventBus::new(8);
        bus.publish(Event::PluginLoaded {
            plugin: PluginId::new("early").unwrap(),
        });
        let mut rx = bus.subscribe();
        let model = ModelId::new("m").unwrap();
        bus.publish(Event::ModelLoaded {
            model: model.clone(),
            millis: 12,
        });
        bus.publish(Event::ModelUnloaded {
            model: model.clone(),
        });
        assert_eq!(
            rx.try_recv().unwrap(),
            Event::ModelLoaded {
                model: model.clone(),
                millis: 12
            }
        );
        assert_eq!(rx.try_recv().unwrap(), Event::ModelUnloaded { model });
        assert!(rx.try_recv().is_err());
    }

    #[test]
    fn events_serialise_with_a_type_tag() {
        let e = Event::ModelUnloaded {
            model: ModelId::new("m").unwrap(),
        };
        assert_eq!(
            serde_json::to_string(&e).unwrap(),
            r#"{"type":"model_unloaded","model":"m"}"#
        );
    }
}
