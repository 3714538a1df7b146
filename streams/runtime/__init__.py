"""The runtime edge: everything that touches Faust and aiokafka (feeds, committed batches,
producing, staged tables, the batch pipeline). Private Faust API only in `faust_api`."""
